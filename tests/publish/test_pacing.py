"""Pacing against the session clock: on-time frames wait for their time, late ones drop to the next keyframe."""

from pyingress.publish.pacing import Action, FramePacer

VIDEO = ("video", 2)


def test_first_frame_anchors_the_clock_and_later_frames_wait_for_their_time() -> None:
    pacer = FramePacer()
    assert pacer.decide(VIDEO, 10.0, True, now=500.0).delay == 0.0
    decision = pacer.decide(VIDEO, 10.04, False, now=500.01)
    assert decision.action is Action.SEND and abs(decision.delay - 0.03) < 1e-9
    # audio shares the clock: its frame at media 10.02 is due at wall 500.02
    audio = pacer.decide("audio", 10.02, True, now=500.0)
    assert abs(audio.delay - 0.02) < 1e-9


def test_a_late_video_frame_is_dropped_and_the_layer_waits_for_a_keyframe() -> None:
    pacer = FramePacer(max_late=0.1)
    pacer.decide(VIDEO, 0.0, True, now=0.0)
    assert pacer.decide(VIDEO, 0.1, False, now=0.19).action is Action.SEND  # 90 ms late: still sent
    late = pacer.decide(VIDEO, 0.2, False, now=0.31)
    assert late.action is Action.DROP and late.late and late.request_keyframe
    following = pacer.decide(VIDEO, 0.3, False, now=0.31)  # on time, but a delta after a gap
    assert following.action is Action.DROP and not following.late and not following.request_keyframe
    assert pacer.decide(VIDEO, 0.4, True, now=0.41).action is Action.SEND
    assert pacer.decide(VIDEO, 0.5, False, now=0.5).action is Action.SEND
    assert (pacer.stats.dropped_late, pacer.stats.dropped_waiting_keyframe, pacer.stats.sent) == (1, 1, 4)


def test_audio_later_than_any_muxing_is_dropped_alone() -> None:
    pacer = FramePacer(max_late_audio=0.4)
    pacer.decide("audio", 0.0, True, now=0.0)
    assert pacer.decide("audio", 0.02, True, now=0.52).action is Action.DROP  # 0.5 s late: a stall, not a PES
    assert pacer.decide("audio", 0.52, True, now=0.52).action is Action.SEND
    moved = pacer.decide("audio", 0.54, True, now=0.72)  # 180 ms late: one PES's worth, the clock follows it
    assert moved.action is Action.SEND and moved.resynced


def test_layers_are_gated_independently() -> None:
    pacer = FramePacer()
    pacer.decide(("video", 0), 0.0, True, now=0.0)
    pacer.wait_for_keyframe(("video", 1))
    assert pacer.decide(("video", 1), 0.033, False, now=0.033).action is Action.DROP
    assert pacer.decide(("video", 0), 0.033, False, now=0.033).action is Action.SEND


def test_a_stalled_source_reanchors_the_clock_instead_of_dropping_forever() -> None:
    pacer = FramePacer(max_late=0.1, resync_after=0.5)
    pacer.decide(VIDEO, 0.0, True, now=0.0)
    # the source stalls for 2 s, then delivers in real time again, 2 s behind
    for i in range(20):
        decision = pacer.decide(VIDEO, 0.033 * (i + 1), i % 10 == 9, now=2.0 + 0.033 * i)
        if decision.action is Action.SEND:
            break
    assert decision.action is Action.SEND and decision.resynced
    assert i == 19  # the first keyframe after resync_after of dropping
    assert pacer.stats.resyncs == 1
    # from now on the same source is on time
    assert pacer.decide(VIDEO, 0.033 * 21, False, now=2.0 + 0.033 * 20).action is Action.SEND


def test_a_timestamp_jump_forward_reanchors() -> None:
    pacer = FramePacer(max_lead=5.0)
    pacer.decide("audio", 0.0, True, now=0.0)
    assert pacer.decide("audio", 1.0, True, now=0.02).delay > 0.9  # a burst ahead waits
    jumped = pacer.decide("audio", 3600.0, True, now=0.04)
    assert jumped.action is Action.SEND and jumped.delay == 0.0 and jumped.resynced


def test_a_standing_delay_from_a_slow_first_frame_drains_gently() -> None:
    pacer = FramePacer(trim_window=2.0, trim_threshold=0.02, max_trim=0.1)
    pacer.decide("audio", 0.0, True, now=0.0)  # the first frame came 300 ms later than the source's pace
    leads = []
    for i in range(1, 600):  # 12 s of 20 ms frames, each arriving 300 ms before it is due
        media = 0.02 * i
        decision = pacer.decide("audio", media, True, now=media - 0.3)
        assert decision.action is Action.SEND
        leads.append(decision.delay)
    assert leads[0] > 0.29
    assert leads[-1] < 0.03  # the standing delay is gone ...
    assert all(b - a <= 0.1 + 1e-9 for a, b in zip(leads[1:], leads, strict=False))  # ... ≤ 100 ms per 2 s window
    assert 0.27 < pacer.stats.trimmed < 0.3


def test_no_trim_while_frames_arrive_just_in_time() -> None:
    pacer = FramePacer()
    for i in range(300):
        pacer.decide("audio", 0.02 * i, True, now=0.02 * i + (0.005 if i % 7 else 0.0))
    assert pacer.stats.trimmed == 0.0


def test_a_standing_delay_is_seen_even_when_frames_queue_behind_a_sleeping_one() -> None:
    """The send loop looks at a frame only when it reaches the head of the queue: by then its own wait is over
    (same-timestamp layers, audio behind video), so the delay must be measured from the frame's arrival."""
    pacer = FramePacer()
    pacer.decide("audio", 0.0, True, now=0.0)  # anchored on a first frame that came 300 ms late
    waits = []
    for i in range(1, 200):  # 4 s of frames, each arriving 300 ms before it is due and looked at when due
        media = 0.02 * i
        due = pacer.clock.due(media)
        decision = pacer.decide("audio", media, True, now=max(due, media - 0.3), arrived=media - 0.3)
        waits.append(max(due, media - 0.3) - (media - 0.3) + decision.delay)
    assert waits[0] > 0.29
    assert max(waits[-50:]) < 0.03  # drained within the first trim windows
    assert pacer.stats.trimmed > 0.27


def test_audio_late_by_its_muxing_keeps_video_waiting_with_it() -> None:
    """FFmpeg's mpegts muxer sends ~8 AAC frames (~170 ms) per audio PES: each Opus frame is ready only when its PES
    arrives.  The clock anchored on that audio (it comes out of the pipeline before the first encoded picture), every
    video frame waits for the audio of its instant and both leave together.  That is what keeps lip sync at a
    LiveKit viewer: the server gives each subscribed track its own media stream unless the room syncs streams, so
    the viewer does not align them by sender reports, only by when they arrive (docs/performance.md, SRT)."""
    pacer = FramePacer()
    aac, pes = 1024 / 48_000, 8
    frames = []  # (arrival, key, media time, keyframe)
    for i in range(12, 300):  # video from 0.4 s: 30 fps, out of the pipeline 40 ms after its time
        frames.append((i / 30 + 0.04, VIDEO, i / 30, i % 60 == 12))
    opus = 0
    for first in range(0, 464, pes):  # audio: 20 ms Opus frames, ready when the PES completing them arrives
        end = (first + pes) * aac
        while (opus + 1) * 0.02 <= end:
            frames.append((end + 0.005, "audio", opus * 0.02, True))
            opus += 1
    frames.sort(key=lambda frame: frame[0])
    sent: dict[object, list[tuple[float, float]]] = {VIDEO: [], "audio": []}  # (media time, sent at)
    for arrival, key, media, keyframe in frames:
        decision = pacer.decide(key, media, keyframe, now=arrival)
        assert decision.action is Action.SEND, (key, media)
        sent[key].append((media, arrival + decision.delay))
    # the same instant leaves on both tracks together (audio at worst one Opus frame late: 20 ms frames cut from
    # 21.3 ms AAC ones do not all end where a PES does) ...
    for media, at in sent["audio"]:
        assert -1e-9 <= at - pacer.clock.due(media) < 0.02
    video_waits = [at - (media + 0.04) for media, at in sent[VIDEO]]
    # ... so video waits for the audio's muxing, ~170 ms after the audio's own pipeline less video's 40 ms
    assert all(abs(wait - (pes * aac + 0.005 - 0.04)) < 1e-6 for wait in video_waits)
    assert pacer.stats.trimmed == 0.0 and pacer.stats.dropped_late == 0


def test_audio_late_by_its_muxing_on_a_clock_video_anchored_moves_the_clock_instead_of_being_dropped() -> None:
    """The first picture out before the first audio PES (a small picture, a quick encoder): each PES's first Opus
    frame is ~170 ms behind a clock the picture set.  Dropping it would drop a fifth of the audio for good (the
    on-time frames of each PES keep resetting the lateness); the clock moves to it once, and video waits with it."""
    pacer = FramePacer()
    aac, pes = 1024 / 48_000, 8
    frames = []  # (arrival, key, media time, keyframe)
    for i in range(0, 300):  # video from 0 s, out 20 ms after its time: it anchors the clock
        frames.append((i / 30 + 0.02, VIDEO, i / 30, i % 60 == 0))
    opus = 0
    for first in range(0, 464, pes):
        end = (first + pes) * aac
        while (opus + 1) * 0.02 <= end:
            frames.append((end + 0.005, "audio", opus * 0.02, True))
            opus += 1
    frames.sort(key=lambda frame: frame[0])
    sent: dict[object, list[tuple[float, float]]] = {VIDEO: [], "audio": []}
    for arrival, key, media, keyframe in frames:
        decision = pacer.decide(key, media, keyframe, now=arrival)
        if decision.action is Action.SEND:
            sent[key].append((media, arrival + decision.delay))
    assert pacer.stats.dropped_late == 0 and len(sent["audio"]) == opus
    assert pacer.stats.resyncs <= 3  # moved once to the first PES (and a little more for the latest frames)
    # after the first PES, both tracks of an instant leave together, video waiting for the audio's muxing
    late_video = [at - (media + 0.02) for media, at in sent[VIDEO] if media > 0.5]
    assert min(late_video) > 0.1
    for media, at in sent["audio"][len(sent["audio"]) // 2 :]:
        assert -1e-9 <= at - pacer.clock.due(media) < 0.03


def _through_one_send_loop(pacer: FramePacer, frames: list[tuple[float, str, float]]) -> list[tuple[float, float]]:
    """Frames (arrival, key, media time) through a send loop as the room publisher's: one queue, each frame looked
    at when the one before it is sent, slept for until due.  (arrival, sent at) of each frame sent."""
    sent = []
    t = 0.0
    for arrival, key, media in sorted(frames):
        t = max(t, arrival)
        decision = pacer.decide(key, media, True, now=t, arrived=arrival)
        if decision.action is Action.SEND:
            t += decision.delay
            sent.append((arrival, t))
    return sent


def test_a_source_that_starts_with_a_burst_leaves_no_standing_delay_and_loses_nothing() -> None:
    """An encoder's first half second comes at once (FFmpeg's SRT/TS output at start), then real time: every later
    frame arrives 0.5 s before the clock the first one set.  The trim takes that wait back; the frames queued
    while it does are then due already, and they are sent at once, not dropped as late and resynced (which put
    the delay back: 500 ms standing, measured with bench/srt.py)."""
    pacer = FramePacer()
    frames = [(max(0.0, i / 30 - 0.5) + 0.01, "video", i / 30) for i in range(300)]
    frames += [(max(0.0, i * 0.02 - 0.5) + 0.01, "audio", i * 0.02) for i in range(500)]
    sent = _through_one_send_loop(pacer, frames)
    assert len(sent) == len(frames) and pacer.stats.dropped_late == 0 and pacer.stats.resyncs == 0
    assert pacer.stats.trimmed > 0.45
    assert max(at - arrival for arrival, at in sent if arrival > 3.0) < 0.03
