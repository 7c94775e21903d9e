// pyingress dashboard: a running session's figures and two small live charts (input bitrate, input frame rate),
// fed by the "stats" events (every 2 s) and kept for the last two minutes.
"use strict";

(() => {
  const HISTORY = 60; // points: 2 minutes at one per 2 s
  const series = new Map(); // ingress id → {resource, bitrate: [Mb/s], fps: [1/s]}

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }

  function push(list, value) {
    list.push(value);
    if (list.length > HISTORY) list.shift();
  }

  function add(sessions) {
    for (const figures of sessions) {
      if (!figures.in) continue;
      let kept = series.get(figures.ingress_id);
      if (!kept || kept.resource !== figures.resource_id) { // a new session starts a new chart
        kept = {resource: figures.resource_id, bitrate: [], fps: []};
        series.set(figures.ingress_id, kept);
      }
      push(kept.bitrate, (figures.in.video_bps + figures.in.audio_bps) / 1e6);
      push(kept.fps, figures.in.video_pps);
    }
  }

  function rate(bps) {
    if (bps === null || bps === undefined) return "–";
    return bps >= 1e6 ? `${(bps / 1e6).toFixed(2)} Mb/s` : `${Math.round(bps / 1e3)} kb/s`;
  }

  function chart(title, values, unit) {
    const width = 260;
    const height = 64;
    const canvas = el("canvas", {width, height});
    const context = canvas.getContext("2d");
    const style = getComputedStyle(document.documentElement);
    const top = Math.max(1, ...values) * 1.15;
    context.strokeStyle = style.getPropertyValue("--line") || "#ccc";
    context.beginPath();
    context.moveTo(0, height - 0.5);
    context.lineTo(width, height - 0.5);
    context.stroke();
    if (values.length > 1) {
      context.strokeStyle = style.getPropertyValue("--accent") || "#2463eb";
      context.lineWidth = 2;
      context.beginPath();
      values.forEach((value, index) => { // the newest point at the right edge, older ones scroll left
        const x = width - ((values.length - 1 - index) / (HISTORY - 1)) * width;
        const y = height - (value / top) * (height - 4) - 2;
        if (index === 0) context.moveTo(x, y);
        else context.lineTo(x, y);
      });
      context.stroke();
    }
    const last = values.length ? values[values.length - 1] : null;
    const label = last === null ? "–" : `${last.toFixed(unit === "Mb/s" ? 2 : 1)} ${unit}`;
    return el("div", {class: "chart"}, el("span", {text: `${title}: ${label}`}), canvas);
  }

  // "1:05 of 10:00 (10 %)" for a file, "1:05 (live)" for a live playlist: a URL ingress's progress.
  function played(progress) {
    const clock = (seconds) => {
      const whole = Math.floor(seconds);
      const hours = Math.floor(whole / 3600);
      const rest = `${Math.floor((whole % 3600) / 60)}`.padStart(hours ? 2 : 1, "0") + ":" +
        `${whole % 60}`.padStart(2, "0");
      return hours ? `${hours}:${rest}` : rest;
    };
    if (progress.duration_s === null) return `${clock(progress.position_s)} (live)`;
    const share = progress.duration_s > 0
      ? Math.min(100, Math.round(100 * progress.position_s / progress.duration_s)) : 0;
    return `${clock(progress.position_s)} of ${clock(progress.duration_s)} (${share} %)`;
  }

  function row(list, name, value) {
    list.append(el("dt", {text: name}), el("dd", {text: value}));
  }

  function panel(ingressId, figures) {
    const box = el("div", {class: "session-figures"});
    const running = figures.get(ingressId);
    if (!running) {
      box.append(el("p", {class: "muted", text: "No session running."}));
      return box;
    }
    const list = el("dl", {class: "figures"});
    const video = running.input_video;
    const audio = running.input_audio;
    const live = running.in;
    if (video) {
      row(list, "Input video", `${video.codec.replace("video/", "")} ${video.width}×${video.height} ` +
        `${video.fps} fps, ${rate(live ? live.video_bps : video.bitrate)}`);
    }
    if (audio) {
      row(list, "Input audio", `${audio.codec.replace("audio/", "")} ${audio.channels} ch ` +
        `${audio.sample_rate / 1000} kHz, ${rate(live ? live.audio_bps : audio.bitrate)}`);
    }
    if (running.progress) row(list, "Played", played(running.progress));
    if (running.output) {
      const layers = running.output.layers.map((layer) => {
        const parts = [`${layer.quality} ${layer.width}×${layer.height} @ ${rate(layer.bitrate)}`];
        if (layer.fps !== null) parts.push(`${layer.fps} fps`);
        if (layer.watched !== null) parts.push(layer.watched ? "watched" : "paused");
        return parts.join(", ");
      });
      row(list, `Output (${running.output.codec})`, layers.join(" · "));
    }
    if (running.viewers) {
      const previews = running.viewers.previews ? ` (+${running.viewers.previews} dashboard preview)` : "";
      row(list, "Viewers", `${running.viewers.total}${previews}`);
    }
    row(list, "Worker CPU", running.cpu_percent === null ? "no worker (pass-through) or not measured yet"
      : `${running.cpu_percent} % of a core`);
    const latency = Object.entries(running.latency).map(
      ([track, figures]) => `${track} p50 ${figures.p50_ms} ms / p95 ${figures.p95_ms} ms`);
    row(list, "Ingest → out", latency.length ? latency.join(" · ") : "–");
    box.append(list);
    const kept = series.get(ingressId) || {bitrate: [], fps: []};
    box.append(el("div", {class: "charts"}, chart("Input bitrate", kept.bitrate, "Mb/s"),
      chart("Input frame rate", kept.fps, "fps")));
    return box;
  }

  window.pyingressCharts = {add, panel, played};
})();
