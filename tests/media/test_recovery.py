"""The restart budget and the output clock that let a session outlive its media worker."""

from fractions import Fraction

from pyingress.media.packets import OutputFrame
from pyingress.media.recovery import OutputClock, RestartBudget

VIDEO, AUDIO = Fraction(1, 90_000), Fraction(1, 48_000)


def test_three_restarts_a_minute_then_no_more_until_the_first_is_a_minute_old() -> None:
    now = [0.0]
    budget = RestartBudget(limit=3, window=60.0, clock=lambda: now[0])
    for at in (0.0, 10.0, 20.0):
        now[0] = at
        assert budget.allow()
    now[0] = 59.9
    assert not budget.allow()  # the fourth within a minute
    now[0] = 60.0  # the first restart left the window: one more, not two
    assert budget.allow() and not budget.allow()


def _video(pts: int) -> OutputFrame:
    return OutputFrame("video", "h264", b"", pts, VIDEO, keyframe=False, quality=2, duration=3000)


def _audio(pts: int) -> OutputFrame:
    return OutputFrame("audio", "opus", b"", pts, AUDIO, duration=960)


def test_frames_pass_unchanged_until_a_restart_then_continue_after_the_last_plus_the_time_it_took() -> None:
    now = [0]
    clock = OutputClock(lambda: now[0])
    assert clock.deliver(_video(90_000)).pts == 90_000  # 1 s
    now[0] = 1_000_000_000
    assert clock.deliver(_audio(48_960)).pts == 48_960  # ends at 1.04 s, the latest end
    now[0] = 1_500_000_000  # the worker died; its successor starts 0.5 s later, its clock at 0
    clock.restarted()
    # 1.04 s + 0.5 s waited = 1.54 s, the same for every track: sync kept, nothing steps back.
    assert clock.deliver(_video(0)).pts == round(1.54 * 90_000)
    assert clock.deliver(_audio(960)).pts == round(1.54 * 48_000) + 960
