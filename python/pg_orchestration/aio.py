"""AsyncClient: the asyncio client, over a psycopg.AsyncConnection.

The same calls as Client (client.py), awaited; the statements, conversions, error mapping,
wait logic and event bookkeeping are the shared ones (_calls.py, errors.py, _wait.py,
_events.py): this file only does the I/O.
"""
from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Mapping, Optional, TypeVar

import psycopg

from . import _calls
from ._connect import backoff, conninfo_of, is_connection_lost
from . import _events
from ._events import EventCursor
from ._wait import RETRY, wait_plan
from .errors import from_psycopg
from .types import Approval, Attempt, Event, MetricSample, Run, RunSummary

__all__ = ["AsyncClient"]

T = TypeVar("T")
Connection = psycopg.AsyncConnection[Any]


class AsyncClient:
    """The pg_orchestration API over one psycopg async connection (see Client: the same
    calls and semantics, awaited).

    AsyncClient.connect() opens (and owns) an autocommit connection: every call commits by
    itself. AsyncClient(conn) wraps yours: with autocommit off, the calls join your transaction
    and you commit (a start() is then undone by a rollback, as in SQL).

    reconnect opens a new connection like this one (by default: the same parameters as
    conn, autocommit): wait() reconnects with it after a dropped connection, events()
    opens its own two connections with it, and the next call after a lost connection
    reconnects (the call that was cut off raises psycopg.OperationalError: it may or may
    not have committed).
    """

    def __init__(self, conn: Connection, *, reconnect: Optional[Callable[[], Awaitable[Connection]]] = None,
                 wait_chunk_seconds: float = 10.0, reconnect_timeout: float = 30.0) -> None:
        self._conn = conn
        if reconnect is None:
            dsn, kwargs = conninfo_of(conn)
            autocommit = conn.autocommit

            async def reconnect() -> Connection:
                conn: Connection = await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit, **kwargs)
                return conn
        self._reconnect = reconnect
        self._owned = False
        #: The longest single wait_for_run call of wait() (it reconnects between chunks).
        self.wait_chunk_seconds = wait_chunk_seconds
        #: How long a reconnect keeps trying before it gives up.
        self.reconnect_timeout = reconnect_timeout

    @classmethod
    async def connect(cls, conninfo: str = "", **kwargs: Any) -> AsyncClient:
        """Opens a connection (psycopg.connect's arguments; autocommit unless you say
        otherwise; the libpq environment PGHOST, PGPORT, ... fills in the rest) and
        returns an AsyncClient that owns it: close() or an async with block closes it."""
        kwargs.setdefault("autocommit", True)

        async def open_connection() -> Connection:
            conn: Connection = await psycopg.AsyncConnection.connect(conninfo, **kwargs)
            return conn
        client = cls(await open_connection(), reconnect=open_connection)
        client._owned = True
        return client

    @property
    def connection(self) -> Connection:
        """The connection in use (a new one after a reconnect)."""
        return self._conn

    async def close(self) -> None:
        """Closes the connection if the client opened it (AsyncClient.connect)."""
        if self._owned:
            await self._conn.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- executing Calls ----------------------------------------------------------------

    async def _open(self) -> Connection:
        """A new connection from reconnect, tried again for reconnect_timeout seconds."""
        delays = backoff(self.reconnect_timeout)
        while True:
            try:
                return await self._reconnect()
            except psycopg.OperationalError:
                delay = next(delays, None)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    async def _run(self, call: _calls.Call[T], conn: Optional[Connection] = None,
             own_transaction: bool = False) -> T:
        if conn is None:
            if self._conn.closed:
                self._conn = await self._open()
            conn = self._conn
        try:
            if own_transaction and not conn.autocommit:
                async with conn.transaction():
                    cur = await conn.execute(call.sql, call.params)
            else:
                cur = await conn.execute(call.sql, call.params)
            rows = await cur.fetchall() if cur.description is not None else []
        except psycopg.Error as error:
            mapped = from_psycopg(error)
            if mapped is None:
                raise
            raise mapped from error
        return call.convert(rows)

    async def _drive(self, plan: Generator[_calls.Call[Any], Any, T]) -> T:
        """Runs a plan (see _wait.py): its Calls on this connection, reconnecting when the
        connection drops and telling the plan so (RETRY)."""
        try:
            call = next(plan)
            while True:
                try:
                    result = await self._run(call, own_transaction=True)
                except psycopg.OperationalError as error:
                    if not is_connection_lost(error, self._conn):
                        raise
                    self._conn = await self._open()
                    result = RETRY
                call = plan.send(result)
        except StopIteration as stop:
            value: T = stop.value
            return value

    # --- definitions --------------------------------------------------------------------

    async def put_agent(self, project_id: int, spec: Mapping[str, Any]) -> int:
        """Registers the agent, or updates the one of that name to spec; returns its id.
        Idempotent: the same spec again changes nothing (orchestration.put_agent)."""
        return await self._run(_calls.put_agent(project_id, spec))

    async def put_workflow(self, project_id: int, spec: Mapping[str, Any]) -> int:
        """Creates the workflow, or updates the one of that name (a new version); returns
        its id. Idempotent as put_agent (orchestration.put_workflow)."""
        return await self._run(_calls.put_workflow(project_id, spec))

    async def find_agent(self, project_id: int, name: str) -> int:
        """The id of the project's agent of that name; NotFound if there is none."""
        return await self._run(_calls.find_agent(project_id, name))

    async def get_agent(self, project_id: int, name: str) -> dict[str, Any]:
        """The agent's spec with every default filled in, plus id, project_id,
        registered_by, registered_at, updated_at; NotFound if there is none."""
        return await self._run(_calls.get_agent(project_id, name))

    async def find_workflow(self, project_id: int, name: str) -> int:
        """The id of the project's workflow of that name; NotFound if there is none."""
        return await self._run(_calls.find_workflow(project_id, name))

    async def get_workflow(self, project_id: int, name: str) -> dict[str, Any]:
        """The workflow as get_workflow shows it (spec, nodes, version, status ...)."""
        return await self._run(_calls.get_workflow(project_id, name))

    # --- runs ---------------------------------------------------------------------------

    async def start(self, project_id: int, workflow: str, context: Optional[Mapping[str, Any]] = None,
              *, idempotency_key: Optional[str] = None, priority: int = 0) -> int:
        """Starts a run of the workflow with context (a JSON object; templates read it as
        {{ context.<key> }}) and returns its id.

        With idempotency_key (1-255 characters), a start with a key the project has used
        returns that run's id instead of starting another, if the workflow and context are
        the same; else Conflict. The nodes of runs with a higher priority (-1000 to 1000,
        default 0) are claimed first. When the opentelemetry package is importable and a span is
        current, its W3C traceparent goes into the context (unless the context has one): the
        run becomes a child span of it. The key compares the context without its
        traceparent, so a retry under another span returns the same run.
        """
        return await self._run(_calls.start(project_id, workflow, context, idempotency_key, priority))

    async def get_run(self, run_id: int) -> Run:
        """The run and its nodes now; NotFound if it does not exist (for this role)."""
        return await self._run(_calls.get_run(run_id))

    async def list_runs(self, project_id: Optional[int] = None, *, status: Optional[str] = None,
                  workflow: Optional[str] = None, since: Optional[datetime] = None,
                  max_rows: int = 100) -> list[RunSummary]:
        """Runs newest first, filtered by what is given (orchestration.list_runs)."""
        return await self._run(_calls.list_runs(project_id, status, workflow, since, max_rows))

    async def wait(self, run_id: int, timeout: _calls.Timeout = 60.0, until: str = "settled") -> Run:
        """Waits for the run and returns it when it succeeded or, with until="settled" (the
        default, as in SQL), when it waits for an approval; until="finished" waits through
        approvals. Raises RunFailed (node_key, node_error), ApprovalRejected, RunCancelled,
        or WaitTimeout (run: its state then). timeout: seconds or a timedelta.

        The server sleeps on a latch until the run changes (no polling); the wait goes on
        over a new connection if this one drops.
        """
        return await self._drive(wait_plan(run_id, timeout, until, self.wait_chunk_seconds))

    async def cancel(self, run_id: int, reason: Optional[str] = None) -> None:
        """Cancels a live run (orchestration.cancel_run); InvalidState if it has finished."""
        await self._run(_calls.cancel(run_id, reason))

    async def retry(self, run_id: int) -> None:
        """Continues a FAILED run from its failed nodes (orchestration.retry_run)."""
        await self._run(_calls.retry(run_id))

    async def attempts(self, run_id: int) -> list[Attempt]:
        """Every attempt of every node of the run, oldest first (orchestration.agent_runs)."""
        return await self._run(_calls.attempts(run_id))

    # --- approvals ----------------------------------------------------------------------

    async def pending_approvals(self, project_id: Optional[int] = None, *,
                          run_id: Optional[int] = None) -> list[Approval]:
        """Approvals waiting for an answer (the pending_approvals view), oldest first."""
        return await self._run(_calls.pending_approvals(project_id, run_id))

    async def approvals(self, run_id: int) -> list[Approval]:
        """Every approval of the run, answered or not, oldest first."""
        return await self._run(_calls.approvals(run_id))

    async def approve(self, approval_id: int, notes: Optional[str] = None) -> None:
        """Approves a pending approval by its id: its node runs."""
        await self._run(_calls.approve(approval_id, notes))

    async def reject(self, approval_id: int, notes: Optional[str] = None) -> None:
        """Rejects a pending approval by its id: its node fails, and so the run."""
        await self._run(_calls.reject(approval_id, notes))

    async def approve_node(self, run_id: int, node_key: str, notes: Optional[str] = None) -> None:
        """Approves the approval the run's node waits for."""
        await self._run(_calls.approve_node(run_id, node_key, notes))

    async def reject_node(self, run_id: int, node_key: str, notes: Optional[str] = None) -> None:
        """Rejects the approval the run's node waits for."""
        await self._run(_calls.reject_node(run_id, node_key, notes))

    # --- observability ------------------------------------------------------------------

    async def metric_samples(self, metric: Optional[str] = None) -> list[MetricSample]:
        """The rows of orchestration.metric_samples (of one metric, if given)."""
        return await self._run(_calls.metric_samples(metric))

    async def metrics_text(self) -> str:
        """orchestration.metrics(): the Prometheus text exposition of the same numbers."""
        return await self._run(_calls.metrics_text())

    # --- events -------------------------------------------------------------------------

    async def events(self, *, run_id: Optional[int] = None, project_id: Optional[int] = None,
               after_id: Optional[int] = None, idle_timeout: Optional[float] = None,
               heartbeat: float = 30.0, reorder_window: float = 10.0,
               page_size: int = 500) -> AsyncIterator[Event]:
        """The events written from now on (or after after_id), oldest first, of one run or
        project if given: each event once, none missed. Awaiting it fixes where the stream
        starts and returns an async generator: `async for event in await client.events()`.

        It opens two connections of its own (reconnect): one that LISTENs, one that reads
        events_after. It reads when notified, and every heartbeat seconds without a
        notification; it ends after idle_timeout seconds without a matching event (None:
        never). A dropped connection is opened again and the stream catches up from the
        last id. Events that commit out of id order within reorder_window seconds are
        delivered too. aclose() the generator (contextlib.aclosing) to close its
        connections at once.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        # The stream starts now, not at its first iteration: the id is read here.
        start = after_id if after_id is not None else await self._run(_calls.last_event_id())
        cursor = EventCursor(start, run_id=run_id, project_id=project_id, reorder_window=reorder_window)
        return self._stream(_events.stream_plan(cursor, idle_timeout, heartbeat, page_size))

    async def _stream(self, plan: Generator[_events.Step, Any, None]) -> AsyncIterator[Event]:
        """Drives stream_plan (_events.py) over two connections of the stream's own."""
        listener: Optional[Connection] = None
        reader: Optional[Connection] = None
        try:
            step = next(plan)
            while True:
                if isinstance(step, Event):
                    yield step
                    step = plan.send(None)
                    continue
                reply: Any = None
                try:
                    if isinstance(step, _events.Open):
                        await _close(listener, reader)
                        listener = reader = None
                        listener = await self._open()  # one at a time: a failure leaves none unclosed
                        reader = await self._open()
                        await listener.set_autocommit(True)
                        await reader.set_autocommit(True)
                        await listener.execute(_calls.LISTEN)
                    elif listener is None or reader is None:
                        raise RuntimeError("the event stream read before it was opened")
                    elif isinstance(step, _events.Read):
                        reply = await self._run(_calls.events_after(step.position, step.page_size), reader)
                    elif isinstance(step, _events.Wait):
                        reply = await _wait_for_notification(listener, step.seconds)
                    else:
                        await listener.execute(_calls.PING)
                except psycopg.OperationalError as error:
                    if listener is None or reader is None or not (
                            is_connection_lost(error, listener) or is_connection_lost(error, reader)):
                        raise
                    step = plan.throw(_events.ConnectionLost())
                    continue
                step = plan.send(reply)
        except StopIteration:
            return
        finally:
            plan.close()
            await _close(listener, reader)


async def _wait_for_notification(listener: Connection, timeout: float) -> bool:
    """Sleeps until the listener's socket has data (a notification, or the end of the
    connection) or timeout seconds pass; consumes what arrived. psycopg 3.1's notifies()
    has no timeout, so the socket is watched by the event loop directly."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    fd = listener.fileno()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)
    loop.add_reader(fd, on_readable)
    try:
        await asyncio.wait_for(ready, max(timeout, 0.0))
    except asyncio.TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    listener.pgconn.consume_input()  # raises OperationalError when the connection ended
    while listener.pgconn.notifies() is not None:
        pass
    return True


async def _close(*conns: Optional[Connection]) -> None:
    for conn in conns:
        if conn is not None:
            await conn.close()
