"""The ``pyingress`` command: ``serve`` runs the service, ``ingress`` manages ingresses through any LiveKit Ingress
API, ``presets`` prints LiveKit's encoding presets."""

import argparse
import asyncio
import sys

from livekit.protocol.models import AudioCodec

from pyingress import __version__
from pyingress.config import ConfigError, load_config
from pyingress.control.cli_ingress import add_ingress_commands
from pyingress.logs import configure_logging
from pyingress.media.presets import all_audio_presets, all_video_presets


def _serve(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, development=args.dev)
        configure_logging(config.logging)  # plain or JSON lines; aiortc/aioice quiet unless asked for
    except ConfigError as exc:
        print(f"pyingress: bad configuration: {exc}", file=sys.stderr)
        return 2
    from pyingress.compose import build_service
    from pyingress.control.store import StoreError
    from pyingress.room_server import RoomServerError
    from pyingress.service import run_service

    async def serve() -> None:
        await run_service(build_service(config))

    try:
        asyncio.run(serve())
    except ConfigError as exc:
        print(f"pyingress: bad configuration: {exc}", file=sys.stderr)
        return 2
    except (RoomServerError, StoreError) as exc:
        print(f"pyingress: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"pyingress: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def format_presets() -> str:
    rows = ["video presets (layers: quality width×height @ bps)"]
    for name, video in all_video_presets():
        layers = ", ".join(
            f"{layer.quality_name} {layer.width}×{layer.height} @ {layer.bitrate:,}" for layer in video.layers
        )
        rows.append(f"  {name:<40} {video.codec_name} {video.frame_rate:g} fps  {layers}")
    rows.append("audio presets")
    for name, audio in all_audio_presets():
        rows.append(f"  {name:<40} {AudioCodec.Name(audio.codec)} {audio.channels} ch @ {audio.bitrate:,}  DTX on")
    return "\n".join(rows)


def _presets(args: argparse.Namespace) -> int:
    print(format_presets())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pyingress", description="Bring RTMP, WHIP, SRT and URL streams into LiveKit")
    parser.add_argument("--version", action="version", version=f"pyingress {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the ingress service")
    serve.add_argument("--config", help="YAML config file (or INGRESS_CONFIG_FILE / INGRESS_CONFIG_BODY)")
    serve.add_argument("--dev", action="store_true", help="development mode: devkey/secret keys, local room server")
    serve.set_defaults(handler=_serve)
    add_ingress_commands(commands)
    presets = commands.add_parser("presets", help="print LiveKit's video and audio encoding presets")
    presets.set_defaults(handler=_presets)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result
