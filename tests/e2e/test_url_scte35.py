"""End to end: an MPEG-TS with an SCTE-35 ad break, served over HTTP and pulled by a URL ingress — as a file, and as
the one segment of an HLS VOD playlist — sets the participant attribute ``ingress.outOfNetwork.eventID`` as
livekit/ingress does — the event id at the splice out, removed at the splice back in — and a `livekit` SDK
subscriber sees both, at their splice times."""

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from livekit import api, rtc
from livekit.protocol.ingress import IngressState

from tests.e2e.room_session import PUBLISHING, wait_status
from tests.harness.livekit_peer import LivekitPeer
from tests.harness.media_server import MediaServer
from tests.harness.pull_media import make_file, url_request
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.scte35_ts import add_break
from tests.harness.subscriber import RoomSubscriber

ATTRIBUTE = "ingress.outOfNetwork.eventID"
EVENT_ID = 3_000_000_001  # above 2^31: the attribute is the unsigned 32-bit id
OUT_AT, BACK_AT = 3.0, 6.0  # seconds into the file


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("url-scte35")
    clip = make_file(directory, "clip.ts", duration=9, size="640x360")
    add_break(clip, directory / "break.ts", EVENT_ID, out_at=OUT_AT, back_at=BACK_AT, notice=1.5)
    playlist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:9\n#EXT-X-MEDIA-SEQUENCE:0\n"
    (directory / "break.m3u8").write_text(playlist + "#EXTINF:9.0,\nbreak.ts\n#EXT-X-ENDLIST\n")
    return directory


@pytest.fixture(scope="module")
def media_server(media_dir: Path) -> Iterator[MediaServer]:
    with MediaServer(media_dir) as server:
        yield server


@pytest.mark.parametrize("name", ["break.ts", "break.m3u8"])
async def test_a_splice_out_and_back_sets_then_clears_the_out_of_network_attribute(
    pyingress_factory: Callable[..., PyingressPeer], livekit_server: LivekitPeer, media_server: MediaServer, name: str
) -> None:
    peer = pyingress_factory()
    room, identity = f"url-scte35-{name.split('.')[1]}", "url-scte35-source"
    changes: list[tuple[float, dict[str, str], dict[str, str]]] = []  # (when, changed, all attributes after)
    async with (
        api.LiveKitAPI(peer.http_url, livekit_server.api_key, livekit_server.api_secret) as client,
        RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", room)) as viewer,
    ):

        @viewer.room.on("participant_attributes_changed")
        def _changed(changed: dict[str, str], participant: rtc.Participant) -> None:
            if participant.identity == identity:
                changes.append((time.monotonic(), dict(changed), dict(participant.attributes)))

        created_at = time.monotonic()
        info = await client.ingress.create_ingress(url_request(media_server.file_url(name), room, identity))
        await viewer.first_video_frame(identity, timeout=20)
        participant = await viewer.wait_participant(identity)
        assert ATTRIBUTE not in participant.attributes  # nothing before the break
        await wait_status(client, info.ingress_id, PUBLISHING, timeout=5)

        async with asyncio.timeout(BACK_AT + 10):
            while not any(ATTRIBUTE in changed and not changed[ATTRIBUTE] for _, changed, _ in changes):
                await asyncio.sleep(0.05)
        ours = [(at, changed, after) for at, changed, after in changes if ATTRIBUTE in changed]
        assert [changed[ATTRIBUTE] for _, changed, _ in ours] == [str(EVENT_ID), ""], changes
        (out_at, _, during), (back_at, _, after) = ours
        assert during[ATTRIBUTE] == str(EVENT_ID)
        assert ATTRIBUTE not in after  # "" removes it, as the reference's clear does
        assert after["ingress.resourceID"] == info.state.resource_id  # the ingress's own attributes stay
        # At the splice times in real time, not when the cues arrived 1.5 s before each: the file starts playing
        # after the create (the worker's start, the first fetch), and the break lasts its 3 s of media.
        out_after, lasted = out_at - created_at, back_at - out_at
        print(f"splice out seen {out_after:.2f} s after the create, back {lasted:.2f} s later")
        assert OUT_AT - 0.2 <= out_after <= OUT_AT + 5, out_after
        assert BACK_AT - OUT_AT - 0.4 <= lasted <= BACK_AT - OUT_AT + 0.4, lasted

        await viewer.wait_gone(identity, timeout=15)  # the file plays to its end as any other
        await wait_status(client, info.ingress_id, IngressState.ENDPOINT_COMPLETE, timeout=10)
    peer.stop()
