"""LiveKit's own API clients — Python `livekit-api` and Node `livekit-server-sdk` — against `pyingress serve`.

The same client code runs against livekit-server v1.13.5 where it can (RTMP, WHIP), and the results are compared
field by field; URL ingresses, which livekit-server only creates with a worker attached, are checked against the
reference semantics (no stream key, single use, not updatable).
"""

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from livekit import api
from livekit.protocol.ingress import (
    CreateIngressRequest,
    DeleteIngressRequest,
    IngressInfo,
    IngressInput,
    IngressState,
    ListIngressRequest,
    UpdateIngressRequest,
)

from tests.e2e.ingress_api import normalised
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.pyingress_peer import PyingressPeer

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NODE_MODULES = REPO / ".cache" / "node" / "node_modules"
NODE_SCRIPT = Path(__file__).with_name("node_ingress_client.cjs")


@pytest.fixture(scope="module")
def pyingress(pyingress_factory: Callable[..., PyingressPeer]) -> PyingressPeer:
    return pyingress_factory()


def _request(name: str, room: str) -> CreateIngressRequest:
    request = json_format.Parse((EXAMPLES / name).read_text(), CreateIngressRequest())
    request.room_name = room
    return request


def _comparable(info: IngressInfo) -> Any:
    return normalised(json.loads(json_format.MessageToJson(info, preserving_proto_field_name=True)))


async def _python_client_scenario(url: str, room: str, with_url_input: bool) -> dict[str, Any]:
    """Everything a Python user does with ingresses, through LiveKitAPI, collected for comparison."""
    lkapi = api.LiveKitAPI(url, "devkey", "secret")
    out: dict[str, Any] = {}
    try:
        for example in (
            "rtmp-ingress.json",
            "rtmp-preset-ingress.json",
            "rtmp-custom-options-ingress.json",
            "whip-ingress.json",
            "whip-transcoding-ingress.json",
        ):
            out[example] = await lkapi.ingress.create_ingress(_request(example, room))
        if with_url_input:
            # In a room of its own, so that room listings compare with livekit-server's.
            out["url"] = await lkapi.ingress.create_ingress(_request("url-ingress.json", room + "-url"))
        rtmp = out["rtmp-ingress.json"]
        whip = out["whip-ingress.json"]
        out["update"] = await lkapi.ingress.update_ingress(
            UpdateIngressRequest(
                ingress_id=rtmp.ingress_id,
                name="renamed",
                enabled=False,
                video=_request("rtmp-custom-options-ingress.json", room).video,
            )
        )
        out["update whip"] = await lkapi.ingress.update_ingress(
            UpdateIngressRequest(ingress_id=whip.ingress_id, enable_transcoding=True, participant_identity="other")
        )
        listed = await lkapi.ingress.list_ingress(ListIngressRequest(room_name=room))
        out["list room"] = sorted(i.name for i in listed.items)
        by_id = await lkapi.ingress.list_ingress(ListIngressRequest(ingress_id=whip.ingress_id))
        out["list id"] = [i.ingress_id == whip.ingress_id for i in by_id.items]
        out["delete"] = await lkapi.ingress.delete_ingress(DeleteIngressRequest(ingress_id=rtmp.ingress_id))
        with pytest.raises(api.TwirpError) as missing:
            await lkapi.ingress.delete_ingress(DeleteIngressRequest(ingress_id=rtmp.ingress_id))
        out["delete again"] = (missing.value.code, missing.value.message, missing.value.status)
        listed = await lkapi.ingress.list_ingress(ListIngressRequest(room_name=room))
        out["list after delete"] = sorted(i.name for i in listed.items)
    finally:
        await lkapi.aclose()
    return out


async def test_python_livekit_api(livekit_server: LivekitPeer, pyingress: PyingressPeer) -> None:
    room = "py-" + uuid.uuid4().hex[:8]
    ours = await _python_client_scenario(pyingress.http_url, room, with_url_input=True)
    theirs = await _python_client_scenario(livekit_server.http_url, room, with_url_input=False)
    url_info: IngressInfo = ours.pop("url")
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        if isinstance(value, IngressInfo):
            assert _comparable(value) == _comparable(theirs[key]), key
        else:
            assert value == theirs[key], key

    rtmp, whip = ours["rtmp-ingress.json"], ours["whip-ingress.json"]
    assert rtmp.url == pyingress.rtmp_url and len(rtmp.stream_key) == 12 and rtmp.reusable
    assert whip.url == pyingress.http_url + "/w" and whip.reusable
    assert (rtmp.enable_transcoding, whip.enable_transcoding) == (True, False)
    assert ours["whip-transcoding-ingress.json"].enable_transcoding
    assert not ours["update"].enabled and ours["update"].HasField("enabled")
    custom = ours["rtmp-custom-options-ingress.json"]
    assert [(layer.width, layer.height, layer.bitrate) for layer in custom.video.options.layers] == [
        (1920, 1080, 4_500_000)
    ]
    assert (custom.audio.options.channels, custom.audio.options.bitrate) == (1, 64_000)
    assert url_info.url == "https://example.com/media/clip.mp4" and url_info.stream_key == ""
    # The pull starts with the create, as with livekit-server and a worker: BUFFERING, a URL resource id.
    assert not url_info.reusable and url_info.state.status == IngressState.Status.ENDPOINT_BUFFERING
    assert url_info.state.resource_id.startswith("UR_")
    assert url_info.input_type == IngressInput.URL_INPUT


def _node(url: str, room: str, *extra: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is not installed (./run test installs it)"
    assert (NODE_MODULES / "livekit-server-sdk").is_dir(), (
        "livekit-server-sdk missing: npm install --prefix .cache/node livekit-server-sdk@2.19.2"
    )
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES), "LIVEKIT_API_KEY": "devkey", "LIVEKIT_API_SECRET": "secret"}
    result = subprocess.run(
        [node, str(NODE_SCRIPT), url, room, *extra], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def test_node_livekit_server_sdk(livekit_server: LivekitPeer, pyingress: PyingressPeer) -> None:
    room = "node-" + uuid.uuid4().hex[:8]
    ours = _node(pyingress.http_url, room, "url")
    theirs = _node(livekit_server.http_url, room)
    url_info, url_update_error = ours.pop("url"), ours.pop("urlUpdateError")
    ours_ids, theirs_ids = {ours["rtmp"]["ingressId"]}, {theirs["rtmp"]["ingressId"]}
    for key in ("listRoom", "listId", "listAfterDelete"):
        assert len(ours[key]) == len(theirs[key]), key
        ours[key], theirs[key] = len(ours[key]), len(theirs[key])
    assert normalised(ours) == normalised(theirs)

    assert ours_ids and theirs_ids
    assert ours["rtmp"]["url"] == pyingress.rtmp_url and ours["rtmp"]["reusable"] is True
    assert ours["rtmp"]["video"]["preset"] == "H264_1080P_30FPS_3_LAYERS"
    assert ours["whip"]["url"] == pyingress.http_url + "/w" and ours["whip"]["bypassTranscoding"] is True
    assert ours["whipTranscoded"]["enableTranscoding"] is True
    assert ours["updated"]["enabled"] is False and ours["updated"]["name"] == "node-rtmp-renamed"
    assert ours["deleteAgainError"] == {
        "status": 404,
        "code": "not_found",
        "message": "twirp error unknown: ingress does not exist",
    }
    assert url_info["inputType"] == "URL_INPUT" and "streamKey" not in url_info and "reusable" not in url_info
    assert url_update_error == {
        "status": 400,
        "code": "invalid_argument",
        "message": "twirp error unknown: ingress is not reusable and cannot be modified",
    }
