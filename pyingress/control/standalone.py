"""Standalone control plane: pyingress owns the ingress records (SQLite), sends the webhooks and serves the Twirp
Ingress API itself.

It is built in two steps because the sessions sit in the middle: the records (``open_standalone_control``) are
what the session manager admits and reports state through, and the API (``StandaloneControlPlane.around``) needs
the manager to start URL ingresses when they are created.  ``pyingress.compose`` does both in that order.
"""

import logging
from dataclasses import dataclass

from aiohttp import web

from pyingress.config import Config, ConfigError
from pyingress.control.api import IngressApi
from pyingress.control.state import SessionRegistry, StandaloneControl, UrlSessionStarter
from pyingress.control.store import IngressStore
from pyingress.control.twirp import TwirpIngressServer
from pyingress.control.webhooks import WebhookNotifier

log = logging.getLogger("pyingress.control")


def webhook_notifier(config: Config) -> WebhookNotifier:
    """Webhooks are signed with ``webhook.api_key`` (default: ``api_key``), which must be a configured key."""
    key = config.webhook.api_key or config.api_key
    if config.webhook.urls and key != config.api_key:
        # livekit-server's words for the same mistake.
        raise ConfigError("webhook.api_key: unknown api key in webhook config")
    return WebhookNotifier(config.webhook.urls, key, config.api_secret if config.webhook.urls else "")


def open_standalone_control(config: Config) -> StandaloneControl:
    """The records and their webhooks: what sessions admit and report state through."""
    notifier = webhook_notifier(config)  # checked before the store file is made
    return StandaloneControl(IngressStore(config.store_path), notifier)


@dataclass
class StandaloneControlPlane:
    store: IngressStore
    notifier: WebhookNotifier | None
    control: StandaloneControl
    sessions: SessionRegistry
    api: IngressApi
    twirp: TwirpIngressServer

    @classmethod
    def around(
        cls,
        config: Config,
        control: StandaloneControl,
        sessions: SessionRegistry,
        start_pull: UrlSessionStarter | None = None,
    ) -> "StandaloneControlPlane":
        """The Ingress API over ``control``'s records; ``start_pull`` starts URL ingresses at create (None: they
        are stored and stay INACTIVE, as while no pull door exists)."""
        keys = {config.api_key: config.api_secret} if config.api_key else {}
        api = IngressApi(
            control.store,
            control,
            sessions,
            config.default_rtmp_base_url,
            config.default_whip_base_url,
            start_pull,
            changes=control.changes,  # one feed for the records: the API's edits and the sessions' states
        )
        return cls(control.store, control.notifier, control, sessions, api, TwirpIngressServer(api, keys))

    def add_routes(self, app: web.Application) -> None:
        self.twirp.add_routes(app)

    async def start(self) -> None:
        log.info("Ingress API on /twirp/livekit.Ingress, %d ingresses in %s", self.store.count(), self.store.path)

    async def close(self) -> None:
        await self.sessions.stop_all()
        if self.notifier is not None:
            await self.notifier.close()
        self.store.close()


def build_standalone_control(config: Config, start_pull: UrlSessionStarter | None = None) -> StandaloneControlPlane:
    """Both steps at once, for tools and tests that run the API without sessions."""
    return StandaloneControlPlane.around(config, open_standalone_control(config), SessionRegistry(), start_pull)
