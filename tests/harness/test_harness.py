"""The harness tests itself: each peer starts for real and does what later tests rely on."""

import asyncio
import contextlib
import functools
import urllib.request
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import redis.asyncio as aioredis
from livekit import rtc

from tests.harness.livekit_peer import LivekitPeer
from tests.harness.publishers import TestPattern, make_clip
from tests.harness.pyingress_peer import PyingressPeer
from tests.harness.redis_peer import RedisPeer
from tests.harness.subscriber import RoomSubscriber
from tests.harness.udp_relay import LossyRelay


async def test_redis_answers(redis_server: RedisPeer) -> None:
    client = aioredis.from_url(redis_server.url)
    try:
        assert await client.ping() is True
        await client.set("harness", "ok")
        assert await client.get("harness") == b"ok"
    finally:
        await client.aclose()


async def _publish_from_sdk(livekit_server: LivekitPeer, room: str, stop: asyncio.Event) -> None:
    """A participant published by the `livekit` SDK itself: raw frames in, libwebrtc encodes."""
    publisher = rtc.Room()
    await publisher.connect(livekit_server.ws_url, livekit_server.token("sdk-publisher", room))
    try:
        video = rtc.VideoSource(640, 360)
        audio = rtc.AudioSource(48_000, 1)
        await publisher.local_participant.publish_track(
            rtc.LocalVideoTrack.create_video_track("pattern", video),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA),
        )
        await publisher.local_participant.publish_track(
            rtc.LocalAudioTrack.create_audio_track("tone", audio),
            rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE),
        )
        n = 0
        tone = (np.sin(np.arange(480) * 2 * np.pi * 440 / 48_000) * 8000).astype(np.int16).tobytes()
        while not stop.is_set():
            pixels = np.full((360, 640, 4), (n * 7) % 255, dtype=np.uint8)
            video.capture_frame(rtc.VideoFrame(640, 360, rtc.VideoBufferType.RGBA, pixels.tobytes()))
            for _ in range(3):  # 30 ms of audio per 33 ms video frame is close enough for a liveness check
                await audio.capture_frame(rtc.AudioFrame(tone, 48_000, 1, 480))
            n += 1
            await asyncio.sleep(1 / 30)
    finally:
        await publisher.disconnect()


async def test_subscriber_sees_an_sdk_published_participant(livekit_server: LivekitPeer) -> None:
    stop = asyncio.Event()
    publishing = asyncio.create_task(_publish_from_sdk(livekit_server, "harness-room", stop))
    try:
        async with RoomSubscriber(livekit_server.ws_url, livekit_server.token("viewer", "harness-room")) as viewer:
            report = await viewer.wait_tracks("sdk-publisher")
            assert report.kind == rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
            assert [t.name for t in report.tracks_of("video")] == ["pattern"]
            assert [t.name for t in report.tracks_of("audio")] == ["tone"]
            sizes = await viewer.video_sizes("sdk-publisher", frames=15)
            assert sum(sizes.values()) == 15
            width, height = max(sizes)
            assert width <= 640 and height <= 360 and abs(width / height - 16 / 9) < 0.05
            frames = await viewer.audio_frames("sdk-publisher", frames=10, channels=1)
            assert len(frames) == 10 and all(f.sample_rate == 48_000 and f.num_channels == 1 for f in frames)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await publishing


def test_ffmpeg_publisher_makes_the_pattern_it_is_asked_for(tmp_path: Path) -> None:
    clip = make_clip(TestPattern(width=320, height=240, fps=25, duration=2, channels=1), tmp_path / "p.mp4")
    with av.open(str(clip)) as container:
        video = container.streams.video[0]
        audio = container.streams.audio[0]
        assert (video.codec_context.width, video.codec_context.height) == (320, 240)
        assert audio.codec_context.sample_rate == 48_000 and audio.codec_context.channels == 1
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 50


def test_pyingress_runs_as_a_subprocess_and_restarts(pyingress_factory: Callable[..., PyingressPeer]) -> None:
    peer = pyingress_factory()
    with urllib.request.urlopen(peer.http_url + "/health", timeout=5) as response:
        assert response.read() == b"Healthy"
    peer.restart()
    with urllib.request.urlopen(peer.http_url + "/availability", timeout=5) as response:
        assert response.status == 200


async def test_udp_relay_keeps_each_client_apart_as_a_nat_does() -> None:
    """Two client addresses through one relay (a peer connection's host candidates, each checking the relay's
    address): what the target answers each reaches that one, however their datagrams interleave."""
    loop = asyncio.get_running_loop()
    echoed: asyncio.Queue[bytes] = asyncio.Queue()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data + b"<" + str(addr[1]).encode(), addr)  # type: ignore[attr-defined]

    class Client(asyncio.DatagramProtocol):
        def __init__(self, name: bytes) -> None:
            self.name = name

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            echoed.put_nowait(self.name + b":" + data)

    target, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    relay = await LossyRelay(target.get_extra_info("sockname")[:2], loss=0.0).start()
    clients = [
        (await loop.create_datagram_endpoint(functools.partial(Client, name), local_addr=("127.0.0.1", 0)))[0]
        for name in (b"a", b"b")
    ]
    try:
        for round_ in range(3):
            for name, client in zip((b"a", b"b"), clients, strict=True):
                client.sendto(name + str(round_).encode(), relay.address)
        replies = [await asyncio.wait_for(echoed.get(), 5) for _ in range(6)]
        assert sorted(reply.split(b"<")[0] for reply in replies) == sorted(
            name + b":" + name + str(round_).encode() for name in (b"a", b"b") for round_ in range(3)
        ), replies
        # The target sees each client from a port of its own, the first from the address a proxy announces.
        ports = {reply.split(b":")[0]: int(reply.split(b"<")[1]) for reply in replies}
        assert ports[b"a"] == relay.back_address[1] and ports[b"b"] != ports[b"a"], ports

        # A client forwarded to before it sent anything gets what the target sends to its back socket.
        late, _ = await loop.create_datagram_endpoint(functools.partial(Client, b"c"), local_addr=("127.0.0.1", 0))
        clients.append(late)
        forwarded = relay.forward_to(late.get_extra_info("sockname")[:2])
        assert forwarded not in (relay.back_address, ("127.0.0.1", ports[b"b"]))
        target.sendto(b"unsolicited", forwarded)
        assert await asyncio.wait_for(echoed.get(), 5) == b"c:unsolicited"
    finally:
        relay.close()
        target.close()
        for client in clients:
            client.close()


async def test_udp_relay_answers_where_the_target_spoke_from() -> None:
    """A target that sends from another socket than the address the relay was given (livekit-server's candidate
    named by its ``node_ip`` while the socket is bound to another address of the host): what the client sends after
    that goes to the socket that spoke, not to the given address, whose socket knows nothing of the session."""
    loop = asyncio.get_running_loop()
    received: dict[str, asyncio.Queue[bytes]] = {"given": asyncio.Queue(), "speaker": asyncio.Queue()}

    class Sink(asyncio.DatagramProtocol):
        def __init__(self, name: str) -> None:
            self.name = name

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            received[self.name].put_nowait(data)

    given, _ = await loop.create_datagram_endpoint(functools.partial(Sink, "given"), local_addr=("127.0.0.1", 0))
    speaker, _ = await loop.create_datagram_endpoint(functools.partial(Sink, "speaker"), local_addr=("127.0.0.1", 0))
    client_got: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            client_got.put_nowait(data)

    client, _ = await loop.create_datagram_endpoint(Client, local_addr=("127.0.0.1", 0))
    relay = await LossyRelay(given.get_extra_info("sockname")[:2], loss=0.0).start()
    try:
        # Before the target has spoken, the client reaches the given address.
        client.sendto(b"first", relay.address)
        assert await asyncio.wait_for(received["given"].get(), 5) == b"first"
        # The target speaks from another socket; the client's answer goes there, and only there.
        speaker.sendto(b"check", relay.forward_to(client.get_extra_info("sockname")[:2]))
        assert await asyncio.wait_for(client_got.get(), 5) == b"check"
        client.sendto(b"answer", relay.address)
        assert await asyncio.wait_for(received["speaker"].get(), 5) == b"answer"
        await asyncio.sleep(0.1)
        assert received["given"].empty()
    finally:
        relay.close()
        for transport in (given, speaker, client):
            transport.close()
