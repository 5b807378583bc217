import math

import pytest

from lib.deadline import Deadline


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_remaining_counts_down_and_never_goes_negative() -> None:
    clock = Clock()
    deadline = Deadline(5.0, clock=clock)
    assert deadline.remaining() == 5.0
    assert not deadline.expired
    clock.now += 4.5
    assert deadline.remaining() == pytest.approx(0.5)
    clock.now += 10.0
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_zero_and_negative_budgets_are_already_expired() -> None:
    assert Deadline(0.0).expired
    assert Deadline(-1.0).expired


def test_infinite_deadline_never_expires() -> None:
    clock = Clock()
    deadline = Deadline(math.inf, clock=clock)
    clock.now += 1e9
    assert not deadline.expired
    assert deadline.remaining() == math.inf


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        Deadline(math.nan)


def test_within_takes_the_earlier_of_the_two() -> None:
    clock = Clock()
    outer = Deadline(10.0, clock=clock)
    assert outer.within(3.0).remaining() == 3.0
    assert outer.within(30.0).remaining() == 10.0
    clock.now += 8.0
    inner = outer.within(5.0)
    assert inner.remaining() == pytest.approx(2.0)
    clock.now += 2.0
    assert inner.expired
    assert Deadline(math.inf, clock=clock).within(4.0).remaining() == 4.0


def test_real_clock_is_monotonic_default() -> None:
    deadline = Deadline(60.0)
    assert 59.0 < deadline.remaining() <= 60.0
    assert "remaining=" in repr(deadline)
