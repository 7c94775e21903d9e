// pyingress dashboard: the login, the ingress list kept live by Server-Sent Events, create/enable/delete.
// Everything shown is set with textContent: ingress names and errors come from users and must never become markup.
"use strict";

(() => {
  const API = "/dashboard/api";
  const ingresses = new Map(); // ingress id → its view (views.py)
  const figures = new Map(); // ingress id → its running session's figures (stats.py)
  const opened = new Set(); // ingress ids whose details are open
  const armedDeletes = new Set(); // ingress ids whose Delete was clicked once
  let session = null; // {api_key, csrf, dev, inputs, video_presets, doors, preview}
  let events = null;

  const $ = (id) => document.getElementById(id);

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  async function post(path, body) {
    const response = await fetch(API + path, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": session ? session.csrf : ""},
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) showLogin();
    if (!response.ok) throw new Error(data.error || `${response.status} ${response.statusText}`);
    return data;
  }

  // -- login ------------------------------------------------------------------------------------------------------

  async function start() {
    const response = await fetch(API + "/session", {credentials: "same-origin"});
    if (response.ok) enter(await response.json());
    else showLogin();
  }

  function showLogin() {
    if (events) events.close();
    events = null;
    session = null;
    window.pyingressPreview.close();
    $("app").hidden = true;
    $("logout").hidden = true;
    $("dev-note").hidden = true;
    $("who").textContent = "";
    $("login").hidden = false;
  }

  function enter(described) {
    session = described;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = session.dev;
    $("dev-note").hidden = !session.dev;
    $("who").textContent = `API key ${session.api_key}`;
    fillForm();
    connect();
  }

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    const response = await fetch(API + "/login", {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({api_key: $("login-key").value, api_secret: $("login-secret").value}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      $("login-error").textContent = data.error || response.statusText;
      return;
    }
    $("login-secret").value = "";
    enter(data);
  });

  $("logout").addEventListener("click", async () => {
    await post("/logout").catch(() => {});
    showLogin();
  });

  // -- the live list ----------------------------------------------------------------------------------------------

  function connect() {
    if (events) events.close();
    events = new EventSource(API + "/events");
    events.addEventListener("snapshot", (event) => {
      const data = JSON.parse(event.data);
      ingresses.clear();
      for (const view of data.ingresses) ingresses.set(view.ingress_id, view);
      setFigures(data.stats);
      $("live").textContent = "live";
      $("live").className = "live on";
      render();
    });
    events.addEventListener("ingress", (event) => {
      const data = JSON.parse(event.data);
      if (data.ingress) ingresses.set(data.ingress_id, data.ingress);
      else ingresses.delete(data.ingress_id);
      render();
    });
    events.addEventListener("stats", (event) => {
      setFigures(JSON.parse(event.data).sessions);
      render();
    });
    events.addEventListener("error", () => {
      $("live").textContent = "reconnecting…";
      $("live").className = "live";
      if (events && events.readyState === EventSource.CLOSED) {
        // Refused (logged out, expired) or the server went away: ask who we are before trying again.
        events = null;
        setTimeout(recheck, 1000);
      }
    });
  }

  async function recheck() {
    try {
      const response = await fetch(API + "/session", {credentials: "same-origin"});
      if (response.ok) enter(await response.json());
      else if (response.status === 401) showLogin();
      else setTimeout(recheck, 2000);
    } catch {
      setTimeout(recheck, 2000);
    }
  }

  function setFigures(sessions) {
    figures.clear();
    for (const running of sessions) figures.set(running.ingress_id, running);
    if (window.pyingressCharts) window.pyingressCharts.add(sessions);
  }

  const COPY_LABEL = "Copy";

  function copyButton(text) {
    return el("button", {
      type: "button",
      class: "copy",
      text: COPY_LABEL,
      onclick: async (event) => {
        const button = event.currentTarget;
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          // Not a secure context (plain HTTP to another host): copy through a selected text area.
          const area = el("textarea", {value: text});
          document.body.append(area);
          area.select();
          document.execCommand("copy");
          area.remove();
        }
        button.textContent = "Copied";
        setTimeout(() => (button.textContent = COPY_LABEL), 1500);
      },
    });
  }

  function field(label, value, cls) {
    return el("div", {class: "field"}, el("span", {class: "label", text: label}),
      el("code", {class: cls, text: value}), copyButton(value));
  }

  function pushDetails(view) {
    const box = el("div", {class: "push"});
    if (view.input === "URL") {
      box.append(el("p", {text: `Pulls ${view.url}`}));
      return box;
    }
    for (const push of view.push) box.append(field(push.label, push.url, "push-url"));
    box.append(field("Stream key", view.stream_key, "stream-key"));
    if (view.input === "RTMP") {
      box.append(el("p", {class: "hint",
        text: `OBS: Settings → Stream → Service: Custom, Server ${view.url}, Stream Key ${view.stream_key}`}));
      if (view.ffmpeg) box.append(field("Test with ffmpeg", view.ffmpeg, "ffmpeg"));
    } else if (view.input === "WHIP") {
      box.append(el("p", {class: "hint",
        text: `OBS ≥ 30: Settings → Stream → Service: WHIP, Server ${view.url}, Bearer Token ${view.stream_key}`}));
      if (window.pyingressGoLive) box.append(window.pyingressGoLive.button(view));
    }
    return box;
  }

  function megabits(bps) {
    return bps >= 1e6 ? `${(bps / 1e6).toFixed(1)} Mb/s` : `${Math.round(bps / 1e3)} kb/s`;
  }

  function summary(view) {
    const running = figures.get(view.ingress_id);
    if (!running) return "";
    const video = running.input_video;
    if (!video) return "starting…";
    const codec = video.codec.replace("video/", "");
    const parts = [`${video.width}×${video.height}`, `${video.fps} fps`, codec];
    const bps = running.in ? running.in.video_bps + running.in.audio_bps : video.bitrate;
    if (bps) parts.push(megabits(bps));
    if (running.viewers) parts.push(`${running.viewers.total} viewer${running.viewers.total === 1 ? "" : "s"}`);
    if (running.progress) parts.push(`played ${window.pyingressCharts.played(running.progress)}`);
    return parts.join(" · ");
  }

  function actions(view) {
    const cell = el("td", {class: "actions"});
    cell.append(el("button", {
      type: "button", class: "preview", text: "Preview", disabled: view.status !== "PUBLISHING" || !session.preview,
      title: session.preview ? "watch the room as a hidden viewer" : session.preview_missing,
      onclick: () => window.pyingressPreview.open(view, session.csrf),
    }));
    if (view.input !== "URL") {
      cell.append(el("button", {
        type: "button", class: "toggle", text: view.enabled ? "Disable" : "Enable",
        onclick: () => post(`/ingresses/${view.ingress_id}/update`, {enabled: !view.enabled}).catch(report),
      }));
    }
    const armed = armedDeletes.has(view.ingress_id);
    cell.append(el("button", {
      type: "button", class: "delete", text: armed ? "Confirm delete" : "Delete",
      onclick: () => {
        if (!armedDeletes.has(view.ingress_id)) { // a second click confirms: no modal dialog in the way
          armedDeletes.add(view.ingress_id);
          setTimeout(() => { armedDeletes.delete(view.ingress_id); render(); }, 4000);
          render();
          return;
        }
        armedDeletes.delete(view.ingress_id);
        post(`/ingresses/${view.ingress_id}/delete`).catch(report);
      },
    }));
    return cell;
  }

  function presetLabel(view) {
    if (view.input === "WHIP" && !view.transcoding) return "as sent";
    if (view.preset === "default") return "720p, 3 layers";
    return view.preset === "custom" ? "custom layers" : view.preset;
  }

  function report(error) {
    $("create-error").textContent = String(error.message || error);
  }

  function render() {
    const rows = $("ingress-rows");
    rows.replaceChildren();
    $("empty").hidden = ingresses.size > 0;
    for (const view of ingresses.values()) {
      const open = opened.has(view.ingress_id);
      const state = el("td", {class: "state"},
        el("span", {class: `badge status-${view.status}`, "data-status": view.status, text: view.status}));
      if (view.error) state.append(el("div", {class: "error", text: view.error}));
      if (!view.enabled) state.append(el("div", {class: "muted", text: "disabled"}));
      const name = el("td", {class: "name"},
        el("button", {type: "button", class: "link", text: view.name || view.ingress_id,
          onclick: () => { open ? opened.delete(view.ingress_id) : opened.add(view.ingress_id); render(); }}),
        el("div", {class: "muted", text: view.ingress_id}));
      const input = view.input + (view.input === "WHIP" ? (view.transcoding ? " transcoded" : " pass-through") : "");
      rows.append(el("tr", {class: "ingress", "data-ingress-id": view.ingress_id, "data-status": view.status},
        name, el("td", {class: "input"}, el("div", {text: input}), el("div", {class: "muted", text: presetLabel(view)})),
        el("td", {text: view.room}), state,
        el("td", {class: "session", text: summary(view)}), actions(view)));
      if (open) {
        const details = el("td", {colSpan: 6}, pushDetails(view));
        if (window.pyingressCharts) details.append(window.pyingressCharts.panel(view.ingress_id, figures));
        rows.append(el("tr", {class: "details", "data-details-of": view.ingress_id}, details));
      }
    }
    window.pyingressPreview.update(ingresses);
  }

  // -- create -----------------------------------------------------------------------------------------------------

  function fillForm() {
    const input = $("create-input");
    if (input.options.length) return;
    for (const name of session.inputs) input.append(el("option", {value: name, text: name}));
    const preset = $("create-preset");
    preset.append(el("option", {value: "default", text: "default (720p, 3 layers)"}));
    for (const name of session.video_presets) preset.append(el("option", {value: name, text: name}));
    preset.append(el("option", {value: "custom", text: "custom layers…"}));
    showInputFields();
  }

  function showInputFields() {
    const kind = $("create-input").value;
    for (const node of document.querySelectorAll(".only-whip")) node.hidden = kind !== "WHIP";
    for (const node of document.querySelectorAll(".only-url")) node.hidden = kind !== "URL";
    for (const node of document.querySelectorAll(".only-custom")) node.hidden = $("create-preset").value !== "custom";
  }

  $("create-input").addEventListener("change", showInputFields);
  $("create-preset").addEventListener("change", showInputFields);

  function customVideo() {
    const layers = [];
    for (const row of document.querySelectorAll("#custom-video .layer-row")) {
      const width = row.querySelector(".w").value;
      if (!width) continue;
      layers.push({quality: row.dataset.quality, width: Number(width), height: Number(row.querySelector(".h").value),
        bitrate: Math.round(Number(row.querySelector(".kbps").value) * 1000)});
    }
    return {codec: $("custom-codec").value, frame_rate: Number($("custom-fps").value), layers};
  }

  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("create-error").textContent = "";
    const kind = $("create-input").value;
    const body = {
      input_type: kind,
      name: $("create-name").value,
      room_name: $("create-room").value,
      participant_identity: $("create-identity").value,
      participant_name: $("create-participant-name").value,
      video_preset: $("create-preset").value,
    };
    if (kind === "WHIP") body.enable_transcoding = $("create-transcoding").checked;
    if (kind === "URL") body.url = $("create-url").value;
    if (body.video_preset === "custom") body.video_options = customVideo();
    try {
      const view = await post("/ingresses", body);
      ingresses.set(view.ingress_id, view);
      render();
      const created = $("created");
      created.replaceChildren(el("h3", {text: `Created ${view.name || view.ingress_id}`}), pushDetails(view));
      created.dataset.ingressId = view.ingress_id;
      created.hidden = false;
    } catch (error) {
      report(error);
    }
  });

  window.pyingressDashboard = {post, el, get session() { return session; }};
  start();
})();
