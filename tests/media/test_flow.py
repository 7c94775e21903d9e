"""Flow control bounded in time: drop to the newest keyframe, stale frames skipped, the frame-rate cap."""

import threading
from fractions import Fraction

from pyingress.media.flow import FrameRateCap, LayerQueue, PacketQueue
from pyingress.media.packets import EncodedPacket

MS = 1_000_000  # ns


def _video(n: int, keyframe: bool = False) -> EncodedPacket:
    return EncodedPacket("video", "h264", bytes([n]), n, n, Fraction(1, 30), keyframe)


def _audio(n: int) -> EncodedPacket:
    return EncodedPacket("audio", "aac", bytes([n]), n, n, Fraction(1, 50))


def test_a_stale_head_drops_everything_before_the_newest_keyframe_but_keeps_markers() -> None:
    queue = PacketQueue(max_delay=0.5)
    queue.put(_video(0, keyframe=True), 0)
    queue.put_marker("stream", 10 * MS)
    for n in range(1, 30):
        queue.put(_audio(n), n * 33 * MS)
        queue.put(_video(n, keyframe=n in (10, 20)), n * 33 * MS)
    # at 33*20 ms the head (0 ms) is 660 ms old and keyframe 20 just arrived: all before it goes, markers stay
    assert queue.keyframe_skips == 1
    first = queue.get(20 * 33 * MS)
    assert first is not None and first.marker == "stream"
    following = queue.get(20 * 33 * MS)
    assert following is not None and following.packet == _video(20, keyframe=True)
    assert queue.dropped_packets == 40  # video 0..19 and audio 1..20 (audio 20 was queued before keyframe 20)


def test_without_a_newer_keyframe_video_waits_and_stale_audio_goes() -> None:
    queue = PacketQueue(max_delay=0.5)
    queue.put(_audio(1), 0)
    queue.put(_audio(2), 0)
    queue.put(_video(3), 0)
    item = queue.get(600 * MS)
    assert item is not None and item.packet == _video(3)
    assert queue.dropped_packets == 2 and queue.keyframe_skips == 0


def test_no_limit_means_nothing_is_dropped() -> None:
    queue = PacketQueue(max_delay=None)
    for n in range(100):
        queue.put(_video(n, keyframe=n % 10 == 0), 0)
    assert len(queue) == 100 and queue.get(10**12) is not None and queue.dropped_packets == 0


def _kept(rate: float, fps: float, seconds: float = 2.0, jitter: int = 0) -> int:
    cap = FrameRateCap(rate)
    frames = int(fps * seconds)
    return sum(cap.admit(int(i * 1e6 / fps) + (jitter if i % 2 else -jitter)) for i in range(frames))


def test_frame_rate_cap_keeps_exactly_the_cap_and_never_raises() -> None:
    assert _kept(30, 60) == 60
    assert _kept(25, 30) == 50
    assert _kept(30, 30, jitter=5000) == 60  # ±5 ms of jitter at exactly the cap loses nothing
    assert _kept(30, 20) == 40
    assert _kept(0, 90) == 180  # no cap configured


def test_frame_rate_cap_restarts_when_time_goes_far_back() -> None:
    cap = FrameRateCap(30)
    assert cap.admit(10_000_000) and not cap.admit(10_010_000)
    assert cap.admit(0) and cap.admit(33_333)


def test_layer_queue_skips_stale_frames_and_drops_the_oldest_when_full() -> None:
    now = [0]
    queue: LayerQueue[int] = LayerQueue(max_delay=0.5, max_items=3)
    for n in range(5):
        queue.put(n, n * 100 * MS)
    assert queue.dropped == 2  # 0 and 1 pushed out by 3 and 4
    now[0] = 650 * MS  # frame 2 (200 ms) is 450 ms old, fine; then 3 and 4
    assert queue.get(lambda: now[0]) == 2
    now[0] = 900 * MS  # frame 3 was enqueued at 300 ms: 600 ms old, skipped
    assert queue.get(lambda: now[0]) == 4
    assert queue.dropped == 3
    queue.close()
    assert queue.get(lambda: now[0]) is None


def test_layer_queue_without_a_limit_blocks_the_producer_instead() -> None:
    queue: LayerQueue[int] = LayerQueue(max_delay=None, max_items=2)
    queue.put(1, 0)
    queue.put(2, 0)
    done = threading.Event()

    def produce() -> None:
        queue.put(3, 0)
        done.set()

    threading.Thread(target=produce).start()
    assert not done.wait(0.1)
    assert queue.get(lambda: 0) == 1
    assert done.wait(1.0)
    assert queue.dropped == 0
