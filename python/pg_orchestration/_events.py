"""The event stream's bookkeeping, shared by Client.events and AsyncClient.events.

Event ids are handed out when an event is written, and transactions commit in any order:
an event with a smaller id than one already delivered can still appear (README,
"events_after"). The cursor remembers the ids it has not seen below the highest one it
has (gaps, as ranges, with the time each was first noticed) and re-reads from the oldest
gap, delivering only ids that fill a gap. A gap is given up after reorder_window seconds:
most are ids of rolled-back transactions or of projects the caller cannot see, which never
appear. So nothing is delivered twice, and an event that commits late within the window
is not lost.
"""
from __future__ import annotations

import time
from typing import Iterable, Optional

from .types import Event

__all__ = ["EventCursor"]


class EventCursor:
    """Which ids were delivered, where to read from next, and which events match."""

    def __init__(self, after_id: int, *, run_id: Optional[int], project_id: Optional[int],
                 reorder_window: float) -> None:
        self.high = after_id  # the highest id seen; every id above it is new
        self._gaps: list[list[float]] = []  # [first id, last id, noticed at], in id order
        self._run_id = run_id
        self._project_id = project_id
        self._window = reorder_window

    @property
    def last_id(self) -> int:
        """The highest event id seen so far (resume a later stream after it)."""
        return self.high

    def read_from(self) -> int:
        """The id to call events_after with: before the oldest gap still open."""
        cutoff = time.monotonic() - self._window
        self._gaps = [g for g in self._gaps if g[2] >= cutoff]
        return int(self._gaps[0][0]) - 1 if self._gaps else self.high

    def accept(self, events: Iterable[Event]) -> list[Event]:
        """The new events among a page read (in id order) that match the filter."""
        now = time.monotonic()
        new = []
        for event in events:
            i = event.event_id
            if i > self.high:
                if i > self.high + 1:
                    self._gaps.append([self.high + 1, i - 1, now])
                self.high = i
            elif not self._fill(i):
                continue  # delivered before
            if self._matches(event):
                new.append(event)
        return new

    def _fill(self, i: int) -> bool:
        for index, (lo, hi, noticed) in enumerate(self._gaps):
            if lo <= i <= hi:
                parts = [[lo, i - 1, noticed]] if lo <= i - 1 else []
                parts += [[i + 1, hi, noticed]] if i + 1 <= hi else []
                self._gaps[index:index + 1] = parts
                return True
            if lo > i:
                break
        return False

    def _matches(self, event: Event) -> bool:
        return ((self._run_id is None or event.run_id == self._run_id)
                and (self._project_id is None or event.project_id == self._project_id))
