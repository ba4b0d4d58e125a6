"""A clock that only moves when told to, for retention tests."""

from __future__ import annotations

import datetime as dt


class FrozenClock:
    """Callable clock: returns ``now`` until ``advance`` or ``set`` moves it."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        self.now += delta
        return self.now

    def set(self, when: dt.datetime) -> None:
        self.now = when
