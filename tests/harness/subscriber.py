"""A room subscriber on the `livekit` Python rtc SDK: what a viewer sees of a participant and its tracks."""

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

from livekit import rtc


@dataclass
class TrackReport:
    sid: str
    kind: str  # "audio" | "video"
    name: str
    source: int
    mime_type: str
    simulcasted: bool
    width: int
    height: int


@dataclass
class ParticipantReport:
    identity: str
    name: str
    kind: int
    metadata: str
    attributes: dict[str, str]
    tracks: list[TrackReport] = field(default_factory=list)

    def tracks_of(self, kind: str) -> list[TrackReport]:
        return [t for t in self.tracks if t.kind == kind]


class RoomSubscriber:
    """Joins a room, waits for a participant, subscribes to its tracks and measures what arrives."""

    def __init__(self, ws_url: str, token: str) -> None:
        self.ws_url = ws_url
        self.token = token
        self.room = rtc.Room()

    async def __aenter__(self) -> "RoomSubscriber":
        await self.room.connect(self.ws_url, self.token, rtc.RoomOptions(auto_subscribe=False))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.room.disconnect()

    async def wait_participant(self, identity: str, timeout: float = 20.0) -> rtc.RemoteParticipant:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            participant = self.room.remote_participants.get(identity)
            if participant is not None:
                return participant
            await asyncio.sleep(0.05)
        raise AssertionError(
            f"participant {identity!r} did not join within {timeout} s (present: {list(self.room.remote_participants)})"
        )

    async def wait_tracks(
        self, identity: str, kinds: tuple[str, ...] = ("audio", "video"), timeout: float = 20.0
    ) -> ParticipantReport:
        participant = await self.wait_participant(identity, timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            report = self.report(participant)
            if all(report.tracks_of(kind) for kind in kinds):
                return report
            await asyncio.sleep(0.05)
        raise AssertionError(f"{identity!r} did not publish {kinds} within {timeout} s: {self.report(participant)}")

    @staticmethod
    def report(participant: rtc.RemoteParticipant) -> ParticipantReport:
        tracks = [
            TrackReport(
                sid=pub.sid,
                kind="video" if pub.kind == rtc.TrackKind.KIND_VIDEO else "audio",
                name=pub.name,
                source=pub.source,
                mime_type=pub.mime_type,
                simulcasted=pub.simulcasted,
                width=pub.width,
                height=pub.height,
            )
            for pub in participant.track_publications.values()
        ]
        return ParticipantReport(
            participant.identity,
            participant.name,
            participant.kind,
            participant.metadata,
            dict(participant.attributes),
            tracks,
        )

    async def _subscribed_track(
        self, identity: str, kind: int, timeout: float
    ) -> tuple[rtc.RemoteTrackPublication, rtc.Track]:
        participant = await self.wait_participant(identity, timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pub in participant.track_publications.values():
                if pub.kind == kind:
                    if not pub.subscribed:
                        pub.set_subscribed(True)
                    if pub.track is not None:
                        return pub, pub.track
            await asyncio.sleep(0.05)
        raise AssertionError(f"no subscribable {rtc.TrackKind.Name(kind)} track from {identity!r}")

    async def video_sizes(
        self, identity: str, quality: int | None = None, frames: int = 30, settle: float = 1.0, timeout: float = 20.0
    ) -> Counter[tuple[int, int]]:
        """Sizes of ``frames`` decoded frames, after asking for ``quality`` and letting the layer switch settle."""
        pub, track = await self._subscribed_track(identity, rtc.TrackKind.KIND_VIDEO, timeout)
        if quality is not None:
            pub.set_video_quality(quality)
        stream = rtc.VideoStream(track)
        sizes: Counter[tuple[int, int]] = Counter()
        try:
            async with asyncio.timeout(timeout):
                started = time.monotonic()
                async for event in stream:
                    if time.monotonic() - started < settle:
                        continue
                    sizes[(event.frame.width, event.frame.height)] += 1
                    if sum(sizes.values()) >= frames:
                        break
        finally:
            await stream.aclose()
        return sizes

    async def sizes_until(
        self, identity: str, quality: int, want: tuple[int, int], run: int = 15, timeout: float = 15.0
    ) -> list[tuple[int, int]]:
        """Frame sizes after asking for ``quality``, until ``run`` frames in a row are ``want`` (or timeout).

        The SFU switches layers on a keyframe and may hold a new viewer on a lower layer while it estimates
        bandwidth, so what counts is where the stream settles, not the first frames after the request.
        """
        pub, track = await self._subscribed_track(identity, rtc.TrackKind.KIND_VIDEO, timeout)
        pub.set_video_quality(quality)  # type: ignore[arg-type]
        stream = rtc.VideoStream(track)
        seen: list[tuple[int, int]] = []
        try:
            async with asyncio.timeout(timeout):
                async for event in stream:
                    seen.append((event.frame.width, event.frame.height))
                    if seen[-run:] == [want] * run:
                        break
        except TimeoutError:
            pass
        finally:
            await stream.aclose()
        return seen

    async def record_video(
        self, identity: str, seen: list[tuple[float, int, int]], quality: int | None = None, timeout: float = 20.0
    ) -> None:
        """Append (monotonic time, width, height) for every decoded video frame of ``identity`` until cancelled."""
        pub, track = await self._subscribed_track(identity, rtc.TrackKind.KIND_VIDEO, timeout)
        if quality is not None:
            pub.set_video_quality(quality)  # type: ignore[arg-type]
        stream = rtc.VideoStream(track)
        try:
            async for event in stream:
                seen.append((time.monotonic(), event.frame.width, event.frame.height))
        finally:
            await stream.aclose()

    async def audio_frames(
        self, identity: str, frames: int = 25, sample_rate: int = 48_000, channels: int = 2, timeout: float = 20.0
    ) -> list[rtc.AudioFrame]:
        _, track = await self._subscribed_track(identity, rtc.TrackKind.KIND_AUDIO, timeout)
        stream = rtc.AudioStream(track, sample_rate=sample_rate, num_channels=channels)
        received: list[rtc.AudioFrame] = []
        try:
            async with asyncio.timeout(timeout):
                async for event in stream:
                    received.append(event.frame)
                    if len(received) >= frames:
                        break
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
        return received

    # -- additions for the room lifecycle tests and the publish-latency benchmark --

    def record_participants(self) -> list[tuple[str, str, str]]:
        """From now on, ("connected" | "disconnected", identity, sid) for every participant joining or leaving."""
        events: list[tuple[str, str, str]] = []
        self.room.on("participant_connected", lambda p: events.append(("connected", p.identity, p.sid)))
        self.room.on("participant_disconnected", lambda p: events.append(("disconnected", p.identity, p.sid)))
        return events

    async def wait_gone(self, identity: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while identity in self.room.remote_participants:
            if time.monotonic() > deadline:
                raise AssertionError(f"participant {identity!r} still in the room after {timeout} s")
            await asyncio.sleep(0.05)

    async def first_video_frame(self, identity: str, timeout: float = 20.0) -> tuple[float, rtc.VideoFrame]:
        """(monotonic time, frame) of the first decoded video frame of ``identity``; subscribes as soon as it can."""
        _, track = await self._subscribed_track(identity, rtc.TrackKind.KIND_VIDEO, timeout)
        stream = rtc.VideoStream(track)
        try:
            async with asyncio.timeout(timeout):
                async for event in stream:
                    return time.monotonic(), event.frame
        finally:
            await stream.aclose()
        raise AssertionError(f"the video of {identity!r} ended before its first frame")
