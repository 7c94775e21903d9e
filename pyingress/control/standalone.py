"""Standalone control plane: the store, webhooks, session registry and the Twirp Ingress API, wired into the service.

``standalone_control_extension`` is the service extension ``serve`` runs in standalone mode.  It leaves on the
service what sessions use: ``service.control`` (IngressControl), ``service.sessions`` (SessionRegistry) and
``service.ingress_api`` (IngressApi; set ``ingress_api.url_session_starter`` to start URL pulls at create).
"""

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyingress.config import Config, ConfigError
from pyingress.control.api import IngressApi
from pyingress.control.state import SessionRegistry, StandaloneControl
from pyingress.control.store import IngressStore
from pyingress.control.twirp import TwirpIngressServer
from pyingress.control.webhooks import WebhookNotifier

if TYPE_CHECKING:
    from pyingress.service import IngressService

log = logging.getLogger("pyingress.control")


@dataclass
class StandaloneControlPlane:
    store: IngressStore
    notifier: WebhookNotifier
    control: StandaloneControl
    sessions: SessionRegistry
    api: IngressApi
    twirp: TwirpIngressServer

    async def close(self) -> None:
        await self.sessions.stop_all()
        await self.notifier.close()
        self.store.close()


def webhook_notifier(config: Config) -> WebhookNotifier:
    """Webhooks are signed with ``webhook.api_key`` (default: ``api_key``), which must be a configured key."""
    key = config.webhook.api_key or config.api_key
    if config.webhook.urls and key != config.api_key:
        # livekit-server's words for the same mistake.
        raise ConfigError("webhook.api_key: unknown api key in webhook config")
    return WebhookNotifier(config.webhook.urls, key, config.api_secret if config.webhook.urls else "")


def build_standalone_control(config: Config) -> StandaloneControlPlane:
    keys = {config.api_key: config.api_secret} if config.api_key else {}
    store = IngressStore(config.store_path)
    notifier = webhook_notifier(config)
    control = StandaloneControl(store, notifier)
    sessions = SessionRegistry()
    api = IngressApi(store, control, sessions, config.default_rtmp_base_url, config.default_whip_base_url)
    return StandaloneControlPlane(store, notifier, control, sessions, api, TwirpIngressServer(api, keys))


async def standalone_control_extension(service: "IngressService") -> None:
    plane = build_standalone_control(service.config)
    plane.twirp.add_routes(service.http_app)
    service.control = plane.control
    service.sessions = plane.sessions
    service.ingress_api = plane.api
    service.add_cleanup(plane.close)
    log.info("Ingress API on /twirp/livekit.Ingress, %d ingresses in %s", plane.store.count(), plane.store.path)
