"""Debian's headless Chromium on the dashboard, driven by Playwright like a person: log in, fill the form, click.

The WHIP tests' Chromium set-up (tests/harness/browser.py: the system /usr/bin/chromium, no download, loopback
WebRTC allowed), plus autoplay without a gesture so the preview's audio element plays in a headless run.
"""

import asyncio
import io
import time
from typing import Any

import av
import numpy as np

from tests.harness.browser import CHROMIUM, FLAGS, _require_browser

DASHBOARD_FLAGS = [*FLAGS, "--autoplay-policy=no-user-gesture-required"]


class DashboardBrowser:
    def __init__(self, base_url: str) -> None:
        _require_browser()
        self.base_url = base_url
        self._playwright: Any = None
        self._browser: Any = None
        self.context: Any = None
        self.page: Any = None
        self.console: list[str] = []

    async def __aenter__(self) -> "DashboardBrowser":
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=DASHBOARD_FLAGS, headless=True
        )
        self.context = await self._browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = await self.context.new_page()
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        await self.page.goto(self.base_url + "/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._playwright is not None:
            await self._playwright.stop()

    async def log_in(self, api_key: str, api_secret: str) -> None:
        await self.page.wait_for_selector("#login:not([hidden])")
        await self.page.fill("#login-key", api_key)
        await self.page.fill("#login-secret", api_secret)
        await self.page.click("#login-button")
        await self.page.wait_for_selector("#app:not([hidden])")
        await self.page.wait_for_selector("#live.on")  # the live feed's snapshot arrived

    async def create(self, **fields: str) -> str:
        """Fill the create form (``input``, ``room``, ``identity``, ``name`` …), press Create; the new ingress id."""
        ids = {"input": "#create-input", "preset": "#create-preset"}
        for name, value in fields.items():
            selector = ids.get(name, f"#create-{name.replace('_', '-')}")
            if name in ids:
                await self.page.select_option(selector, value)
            else:
                await self.page.fill(selector, value)
        await self.page.click("#create-button")
        created = await self.page.wait_for_selector("#created:not([hidden]) .stream-key")
        assert created is not None
        ingress_id: str = await self.page.get_attribute("#created", "data-ingress-id")
        return ingress_id

    async def text(self, selector: str) -> str:
        value: str = await self.page.text_content(selector)
        return value

    async def wait_text(self, selector: str, pattern: str, timeout: float = 15.0) -> str:
        """Until the text of ``selector`` matches the JavaScript regular expression ``pattern``; that text."""
        from playwright.async_api import TimeoutError as PlaywrightTimeout

        try:
            await self.page.wait_for_function(
                "([s, p]) => new RegExp(p).test(document.querySelector(s)?.textContent ?? '')",
                arg=[selector, pattern],
                timeout=timeout * 1000,
            )
        except PlaywrightTimeout:
            shown = await self.page.text_content(selector) if await self.page.query_selector(selector) else None
            raise AssertionError(f"{selector} never matched {pattern!r} in {timeout} s; it shows {shown!r}") from None
        return await self.text(selector)

    async def wait_status(self, ingress_id: str, status: str, timeout: float = 30.0) -> None:
        await self.page.wait_for_selector(
            f'tr.ingress[data-ingress-id="{ingress_id}"][data-status="{status}"]', timeout=timeout * 1000
        )

    async def row_click(self, ingress_id: str, button: str) -> None:
        await self.page.click(f'tr.ingress[data-ingress-id="{ingress_id}"] button.{button}')

    async def video(self) -> dict[str, float]:
        found: dict[str, float] = await self.page.evaluate(
            """() => { const v = document.getElementById("preview-video");
                return {width: v.videoWidth, height: v.videoHeight, time: v.currentTime, paused: v.paused ? 1 : 0}; }"""
        )
        return found

    async def wait_video_width(self, width: int, timeout: float = 30.0) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        seen = await self.video()
        while seen["width"] != width:
            if time.monotonic() > deadline:
                status = await self.text("#preview-status")
                raise AssertionError(f"preview width {seen} never {width}; status {status!r}; {self.console[-20:]}")
            await asyncio.sleep(0.25)
            seen = await self.video()
        return seen

    async def player_pixels(self) -> "np.ndarray[Any, Any]":
        """A screenshot of the player element, decoded (RGB rows × columns × 3)."""
        png: bytes = await self.page.locator("#preview-video").screenshot()
        with av.open(io.BytesIO(png), mode="r", format="png_pipe") as container:
            frame = next(container.decode(video=0))
            return frame.to_ndarray(format="rgb24")
