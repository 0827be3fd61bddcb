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
from dataclasses import dataclass
from typing import Any, Generator, Iterable, Optional, Union

from .types import Event

__all__ = ["EventCursor", "Open", "Read", "Wait", "Ping", "ConnectionLost", "Step", "stream_plan"]


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


# --- the stream's steps ----------------------------------------------------------------------
# stream_plan is the event stream of Client.events and AsyncClient.events, written once: it
# yields what to do next and the driver (sync or async) does it and sends the result back.
# An Event it yields is the driver's to hand to its caller. When a connection drops, the
# driver throws ConnectionLost into the plan, which opens new ones and reads again from
# the cursor: nothing is missed between connections.

@dataclass(frozen=True)
class Open:
    """(Re)open the listening and reading connections, and LISTEN before the next read: an
    event committed after that read wakes the stream, one committed before is in it."""


@dataclass(frozen=True)
class Read:
    """events_after(position, page_size) on the reading connection; reply: list[Event]."""
    position: int
    page_size: int


@dataclass(frozen=True)
class Wait:
    """Sleep until a notification arrives or seconds pass; reply: whether one arrived."""
    seconds: float


@dataclass(frozen=True)
class Ping:
    """A statement on the listening connection: a dead one raises instead of staying silent."""


class ConnectionLost(Exception):
    """Thrown into the plan by its driver when a connection of the stream dropped."""


Step = Union[Open, Read, Wait, Ping, Event]


def stream_plan(cursor: EventCursor, idle_timeout: Optional[float], heartbeat: float,
                page_size: int) -> Generator[Step, Any, None]:
    """Reads on each notification and every heartbeat seconds, page by page; ends after
    idle_timeout seconds without a matching event (None: never)."""
    idle_deadline = None if idle_timeout is None else time.monotonic() + idle_timeout
    connected = False
    while True:
        try:
            if not connected:
                yield Open()
                connected = True
            position = cursor.read_from()
            while True:
                page = yield Read(position, page_size)
                for event in cursor.accept(page):
                    if idle_timeout is not None:
                        idle_deadline = time.monotonic() + idle_timeout
                    yield event
                if len(page) < page_size:
                    break
                position = page[-1].event_id
            wait = heartbeat
            if idle_deadline is not None:
                wait = min(wait, idle_deadline - time.monotonic())
                if wait <= 0:
                    return
            if not (yield Wait(wait)):
                yield Ping()  # no notification: make sure the listener still works, then read anyway
        except ConnectionLost:
            connected = False
