"""``pyingress ingress create|list|update|delete|watch``: a client for any LiveKit Ingress API, pyingress or
livekit-server.

Shaped like ``lk ingress``: ``--url``, ``--api-key``, ``--api-secret`` (or LIVEKIT_URL / LIVEKIT_API_KEY /
LIVEKIT_API_SECRET), request files in protojson (``create FILE|-``; snake_case or camelCase names, enums by name or
number; unknown fields are refused so that a typo does not silently drop a setting; ``cli_request.py`` says where a
file is wrong).  Output is a readable table, or with ``--json`` the protojson of the response; ``watch`` follows an
ingress's state (``cli_watch.py``).  It speaks Twirp JSON over plain HTTP, so an error prints exactly
what the server said.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import TypeVar
from urllib.parse import urlsplit

import jwt
from google.protobuf import json_format
from google.protobuf.message import Message
from jwt.warnings import InsecureKeyLengthWarning
from livekit.protocol.ingress import (
    CreateIngressRequest,
    DeleteIngressRequest,
    IngressInfo,
    IngressInput,
    IngressState,
    ListIngressRequest,
    ListIngressResponse,
    UpdateIngressRequest,
)

from pyingress.control.cli_request import RequestFileError, read_request
from pyingress.control.cli_watch import WatchError, watch
from pyingress.control.protojson import to_json
from pyingress.web.progress import PATH as PROGRESS_PATH

# LiveKit's development secret ("secret") is shorter than the 32 bytes PyJWT recommends; LiveKit accepts such keys,
# so PyJWT's warning would only repeat on every token.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_TTL_S = 10 * 60
REQUEST_TIMEOUT_S = 30

M = TypeVar("M", bound=Message)


class CliError(Exception):
    pass


def http_url(url: str) -> str:
    """LIVEKIT_URL is usually a ws(s):// room URL; the API lives on the same host over http(s)."""
    if url.startswith("ws://") or url.startswith("wss://"):
        url = "http" + url[2:]
    return url.rstrip("/")


class IngressClient:
    """A synchronous Twirp JSON client for ``livekit.Ingress``."""

    def __init__(self, url: str, api_key: str, api_secret: str) -> None:
        if not api_key or not api_secret:
            raise CliError("an API key and secret are needed: --api-key/--api-secret or LIVEKIT_API_KEY/SECRET")
        self.url = http_url(url)
        self.api_key = api_key
        self.api_secret = api_secret

    def _token(self) -> str:
        # An access token as LiveKit's SDKs mint it, with the one grant the Ingress API checks (protocol.md §2).
        now = int(time.time())
        claims = {"iss": self.api_key, "nbf": now, "exp": now + TOKEN_TTL_S, "video": {"ingressAdmin": True}}
        return jwt.encode(claims, self.api_secret, algorithm="HS256")

    def call(self, method: str, request: Message, response_type: type[M]) -> M:
        body = json_format.MessageToJson(request, preserving_proto_field_name=True).encode()
        http_request = urllib.request.Request(
            f"{self.url}/twirp/livekit.Ingress/{method}",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token()}"},
        )
        try:
            with urllib.request.urlopen(http_request, timeout=REQUEST_TIMEOUT_S) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise CliError(_describe_error(exc.code, exc.read())) from None
        except urllib.error.URLError as exc:
            raise CliError(f"cannot reach {self.url}: {exc.reason}") from None
        result = response_type()
        json_format.Parse(payload, result, ignore_unknown_fields=True)
        return result

    def create(self, request: CreateIngressRequest) -> IngressInfo:
        return self.call("CreateIngress", request, IngressInfo)

    def update(self, request: UpdateIngressRequest) -> IngressInfo:
        return self.call("UpdateIngress", request, IngressInfo)

    def list(self, request: ListIngressRequest) -> ListIngressResponse:
        return self.call("ListIngress", request, ListIngressResponse)

    def delete(self, ingress_id: str) -> IngressInfo:
        return self.call("DeleteIngress", DeleteIngressRequest(ingress_id=ingress_id), IngressInfo)

    def progress(self, ingress_id: str) -> tuple[float, float | None] | None:
        """(seconds played, duration or None) of a URL ingress's file, from pyingress's own endpoint; None when
        nothing is playing or the server is not pyingress (livekit-server has no such endpoint)."""
        http_request = urllib.request.Request(
            f"{self.url}{PROGRESS_PATH}/{urllib.parse.quote(ingress_id)}",
            headers={"Authorization": f"Bearer {self._token()}"},
        )
        try:
            with urllib.request.urlopen(http_request, timeout=REQUEST_TIMEOUT_S) as response:
                body = json.loads(response.read())
        except (urllib.error.URLError, ValueError):
            return None
        return float(body["position_s"]), body["duration_s"]


def _describe_error(status: int, body: bytes) -> str:
    try:
        error = json.loads(body)
        return f"{error['code']}: {error['msg']} (HTTP {status})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {body.decode(errors='replace').strip()}"


def _status(info: IngressInfo) -> str:
    status = IngressState.Status.Name(info.state.status).removeprefix("ENDPOINT_")
    return f"{status} ({info.state.error})" if info.state.error else status


def _input(info: IngressInfo) -> str:
    return (
        IngressInput.Name(info.input_type).removesuffix("_INPUT")
        if info.input_type in (0, 1, 2)
        else str(info.input_type)
    )


def _push_url(info: IngressInfo) -> str:
    # The URL an encoder pushes to: base URL + stream key (RTMP, WHIP); the pull source for URL ingresses.
    if info.stream_key and info.url:
        return f"{info.url.rstrip('/')}/{info.stream_key}"
    return info.url


def srt_push_url(info: IngressInfo, srt_port: int) -> str | None:
    """Where an encoder pushes this RTMP ingress over SRT: pyingress's SRT listener on the RTMP URL's host (the API
    does not carry the SRT address; ``srt_port`` is the server's, 8890 unless configured otherwise)."""
    if info.input_type != IngressInput.RTMP_INPUT or not info.stream_key or srt_port <= 0:
        return None
    host = urlsplit(info.url).hostname
    if not host:
        return None
    host = f"[{host}]" if ":" in host else host
    return f"srt://{host}:{srt_port}?streamid=#!::r={info.stream_key},m=publish"


def format_info(info: IngressInfo, srt_port: int = 0) -> str:
    transcoding = "on" if info.enable_transcoding else "off (pass-through)"
    srt = srt_push_url(info, srt_port)
    rows = [
        ("Ingress ID", info.ingress_id),
        ("Name", info.name),
        ("Input", _input(info)),
        ("URL", info.url),
        ("Stream key", info.stream_key or "-"),
        ("Push to", _push_url(info) if info.stream_key else "-"),
        *([("or over SRT", srt)] if srt else []),
        ("Room", info.room_name or "-"),
        ("Identity", info.participant_identity),
        ("Transcoding", transcoding),
        ("Enabled", "no" if info.HasField("enabled") and not info.enabled else "yes"),
        ("Reusable", "yes" if info.reusable else "no"),
        ("Status", _status(info)),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def format_table(infos: list[IngressInfo]) -> str:
    header = ("INGRESS ID", "NAME", "ROOM", "INPUT", "STREAM KEY", "URL", "STATUS")
    rows = [(i.ingress_id, i.name, i.room_name, _input(i), i.stream_key, i.url, _status(i)) for i in infos]
    widths = [max(len(str(row[col])) for row in [header, *rows]) for col in range(len(header))]
    lines = [
        "  ".join(str(value).ljust(widths[col]) for col, value in enumerate(row)).rstrip() for row in [header, *rows]
    ]
    if not rows:
        lines.append("(no ingresses)")
    return "\n".join(lines)


def _client(args: argparse.Namespace) -> IngressClient:
    key, secret = args.api_key, args.api_secret
    if args.dev:
        key, secret = key or "devkey", secret or "secret"
    return IngressClient(args.url, key or "", secret or "")


def _print(message: Message, args: argparse.Namespace, table: str) -> None:
    print(to_json(message, proto_names=True, emit_unpopulated=True) if args.json else table)


def _create(args: argparse.Namespace) -> None:
    info = _client(args).create(read_request(args.file, CreateIngressRequest()))
    _print(info, args, format_info(info, args.srt_port))


def _update(args: argparse.Namespace) -> None:
    request = read_request(args.file, UpdateIngressRequest())
    if args.id:
        request.ingress_id = args.id
    if not request.ingress_id:
        raise CliError("the update needs an ingress_id (in the file or --id)")
    info = _client(args).update(request)
    _print(info, args, format_info(info, args.srt_port))


def _list(args: argparse.Namespace) -> None:
    response = _client(args).list(ListIngressRequest(room_name=args.room or "", ingress_id=args.id or ""))
    _print(response, args, format_table(list(response.items)))


def _delete(args: argparse.Namespace) -> None:
    info = _client(args).delete(args.ingress_id)
    _print(info, args, format_info(info))


def _watch(args: argparse.Namespace) -> int:
    client = _client(args)

    def load(request: ListIngressRequest) -> list[IngressInfo]:
        try:
            return list(client.list(request).items)
        except CliError as exc:
            if str(exc).startswith("not_found:"):  # deleted (or never there: watch tells which)
                return []
            raise

    return watch(load, args, progress=client.progress)


def _run(args: argparse.Namespace) -> int:
    try:
        code: int | None = args.action(args)
    except (CliError, RequestFileError, WatchError) as exc:
        print(f"pyingress: {exc}", file=sys.stderr)
        return 1
    return code or 0


def add_ingress_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--url",
        default=os.environ.get("LIVEKIT_URL") or DEFAULT_URL,
        help="API URL (LIVEKIT_URL; http, https, ws, wss)",
    )
    connection.add_argument("--api-key", default=os.environ.get("LIVEKIT_API_KEY"), help="API key (LIVEKIT_API_KEY)")
    connection.add_argument(
        "--api-secret", default=os.environ.get("LIVEKIT_API_SECRET"), help="API secret (LIVEKIT_API_SECRET)"
    )
    connection.add_argument("--dev", action="store_true", help="use the development key devkey/secret")
    connection.add_argument("--json", action="store_true", help="print the response as protojson")
    connection.add_argument(
        "--srt-port",
        type=int,
        default=int(os.environ.get("PYINGRESS_SRT_PORT") or 8890),
        help="pyingress's SRT port, for the SRT push address of RTMP ingresses (PYINGRESS_SRT_PORT; 8890; -1: none)",
    )

    ingress = commands.add_parser("ingress", help="create, list, update and delete ingresses (LiveKit Ingress API)")
    actions = ingress.add_subparsers(dest="ingress_command", required=True)
    create = actions.add_parser("create", parents=[connection], help="create an ingress from a JSON request file")
    create.add_argument("file", help="CreateIngressRequest as JSON, or - for stdin")
    create.set_defaults(handler=_run, action=_create)
    listing = actions.add_parser("list", parents=[connection], help="list ingresses")
    listing.add_argument("--room", help="only the ingresses of this room")
    listing.add_argument("--id", help="only this ingress")
    listing.set_defaults(handler=_run, action=_list)
    update = actions.add_parser("update", parents=[connection], help="update an ingress from a JSON request file")
    update.add_argument("file", help="UpdateIngressRequest as JSON (with ingress_id), or - for stdin")
    update.add_argument("--id", help="the ingress to update (overrides ingress_id in the file)")
    update.set_defaults(handler=_run, action=_update)
    delete = actions.add_parser("delete", parents=[connection], help="delete an ingress")
    delete.add_argument("ingress_id")
    delete.set_defaults(handler=_run, action=_delete)
    follow = actions.add_parser(
        "watch", parents=[connection], help="follow an ingress's state live: a line each time it changes"
    )
    follow.add_argument("ingress_id")
    follow.add_argument("--interval", type=float, default=1.0, help="seconds between looks (1)")
    follow.add_argument("--until", help="exit 0 once the status is one of these (e.g. PUBLISHING or INACTIVE,ERROR)")
    follow.add_argument("--timeout", type=float, default=0.0, help="with --until: exit 1 after this many seconds")
    follow.set_defaults(handler=_run, action=_watch)
