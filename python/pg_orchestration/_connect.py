"""Opening connections again: the factories a client reconnects with, and the schedule of
its attempts. Shared by Client and AsyncClient.

wait() and events() survive a dropped connection: they open a new one and go on. The
reconnect tries again after 0.1 s, 0.2 s, 0.4 s ... (at most 2 s apart) until
reconnect_timeout seconds have passed, then raises the last connection error.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import psycopg

__all__ = ["backoff", "conninfo_of", "is_connection_lost"]


def backoff(total_seconds: float) -> Iterator[float]:
    """Delays before each further attempt, while total_seconds have not passed."""
    deadline = time.monotonic() + total_seconds
    delay = 0.1
    while time.monotonic() + delay < deadline:
        yield delay
        delay = min(delay * 2, 2.0)


def conninfo_of(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> tuple[str, dict[str, Any]]:
    """How to open another connection like conn: its parameters (libpq never reports the
    password in them, so it is passed on separately when there is one)."""
    kwargs: dict[str, Any] = {}
    password = conn.info.password
    if password:
        kwargs["password"] = password
    return conn.info.dsn, kwargs


def is_connection_lost(error: BaseException,
                       conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether error means the connection is gone (terminated backend, network, restart)."""
    return isinstance(error, psycopg.OperationalError) and conn.closed
