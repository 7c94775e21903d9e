"""End to end in livekit mode: a URL ingress created through an unmodified livekit-server is started on pyingress by
psrpc ``StartIngress`` (the same ``start_pull`` as the standalone API), plays a file served over HTTP into the
room and ends COMPLETE in livekit-server's records."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.room_session import ingress_state, wait_status
from tests.harness.livekit_cluster import LivekitCluster
from tests.harness.media_server import MediaServer
from tests.harness.pull_media import make_file, url_request
from tests.harness.subscriber import RoomSubscriber

COMPLETE = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivekitCluster]:
    running = LivekitCluster(tmp_path_factory.mktemp("url-livekit-mode"), workers=1).start()
    yield running
    running.stop()


async def test_a_url_ingress_created_through_livekit_server_plays_on_the_worker(
    cluster: LivekitCluster, tmp_path: Path
) -> None:
    make_file(tmp_path, "clip.ts", duration=5, size="640x360")
    room, identity = "lk-mode-url", "lk-mode-url-source"
    with MediaServer(tmp_path) as http:
        async with (
            cluster.livekit.api() as client,
            RoomSubscriber(cluster.livekit.ws_url, cluster.livekit.token("viewer", room)) as viewer,
        ):
            info = await client.ingress.create_ingress(url_request(http.file_url("clip.ts"), room, identity))
            # livekit-server asked our worker (StartIngress) before it answered: the session is already ours.
            assert info.state.status == 1 and info.state.resource_id.startswith("UR_"), info.state
            report = await viewer.wait_tracks(identity, timeout=20)
            (video,) = report.tracks_of("video")
            assert (video.width, video.height) == (640, 360) and report.tracks_of("audio")
            state = await wait_status(client, info.ingress_id, COMPLETE, timeout=25)
            assert not state.error and state.resource_id == info.state.resource_id
            await viewer.wait_gone(identity, timeout=5)
            assert (await ingress_state(client, info.ingress_id)).ended_at > 0
