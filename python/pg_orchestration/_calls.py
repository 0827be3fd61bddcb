"""Every SQL statement of the client and the conversion of its rows, shared by Client and
AsyncClient: a Call is the statement, its parameters and how its rows become the result.
The clients only execute Calls (sync or async) and map errors (errors.from_psycopg).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable, Generic, Mapping, Optional, Sequence, TypeVar, Union

from psycopg.types.json import Jsonb

from . import _trace
from .errors import InvalidInput, NotFound
from .types import Approval, Attempt, Event, MetricSample, NodeState, Run, RunSummary

T = TypeVar("T")
Row = Sequence[Any]
Timeout = Union[float, int, timedelta]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One statement: sql with %s placeholders, its params, and rows → result."""
    sql: str
    params: tuple[Any, ...]
    convert: Callable[[list[Row]], T]


# --- conversions -------------------------------------------------------------------------

def _time(value: Any) -> Optional[datetime]:
    # run_json's timestamps are JSON strings (ISO 8601); table columns arrive as datetimes.
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _required_time(value: Any) -> datetime:
    parsed = _time(value)
    if parsed is None:
        raise ValueError("a required timestamp is NULL")
    return parsed


def node_from_json(doc: Mapping[str, Any]) -> NodeState:
    return NodeState(
        node_key=doc["node_key"], status=doc["status"], attempt=int(doc.get("attempt") or 0),
        output=doc.get("output"), error=doc.get("error"), skip_reason=doc.get("skip_reason"),
        started_at=_time(doc.get("started_at")), finished_at=_time(doc.get("finished_at")),
        duration_ms=doc.get("duration_ms"))


def run_from_json(doc: Mapping[str, Any]) -> Run:
    """A Run from run_json / wait_for_run's jsonb."""
    return Run(
        run_id=int(doc["run_id"]), project_id=int(doc["project_id"]), workflow=doc["workflow"],
        workflow_version=int(doc.get("workflow_version") or 0), status=doc["status"],
        error=doc.get("error"), trigger=doc.get("trigger") or "", started_by=doc.get("started_by") or "",
        traceparent=doc.get("traceparent"), created_at=_required_time(doc["created_at"]),
        started_at=_time(doc.get("started_at")), finished_at=_time(doc.get("finished_at")),
        duration_ms=doc.get("duration_ms"),
        nodes=tuple(node_from_json(n) for n in doc.get("nodes") or ()),
        timed_out=bool(doc.get("timed_out", False)), idempotency_key=doc.get("idempotency_key"),
        priority=int(doc.get("priority") or 0))


def _scalar(rows: list[Row]) -> Any:
    return rows[0][0] if rows else None


def _int(rows: list[Row]) -> int:
    return int(_scalar(rows))


def _none(rows: list[Row]) -> None:
    return None


def _json_object(rows: list[Row]) -> dict[str, Any]:
    value = _scalar(rows)
    return dict(value) if isinstance(value, dict) else {}


# Column lists, in the dataclasses' field order: the SELECTs below name them once.
_SUMMARY_COLUMNS = ("run_id, project_id, workflow, status::text, nodes, succeeded, failed, running, "
                    "pending, waiting, skipped, cancelled, percent_done, trigger, started_by, "
                    "created_at, started_at, finished_at, elapsed, error")
_ATTEMPT_COLUMNS = ("id, run_id, node_key, agent_name, attempt, status::text, input_json, output_json, "
                    "error, exit_code, log_tail, container_id, traceparent, started_at, finished_at, "
                    "duration_ms")
_APPROVAL_COLUMNS = ("a.id, a.project_id, a.run_id, a.node_key, a.status::text, a.requested_at, "
                     "a.expires_at, a.responded_at, a.responded_by::text, a.notes")
_EVENT_COLUMNS = "id, project_id, type, subject, run_id, created_at, payload"


def _summary(row: Row) -> RunSummary:
    values = list(row)
    values[12] = float(values[12])  # percent_done is numeric (Decimal)
    return RunSummary(*values)


def _approval(row: Row) -> Approval:
    return Approval(*row)


def pending_approval(row: Row) -> Approval:
    (approval_id, project_id, run_id, workflow, node_key, agent, action, started_by,
     requested_at, expires_at, input_) = row
    return Approval(approval_id=approval_id, project_id=project_id, run_id=run_id, node_key=node_key,
                    status="PENDING", requested_at=requested_at, expires_at=expires_at,
                    responded_at=None, responded_by=None, notes=None, workflow=workflow,
                    agent=agent, action=action, started_by=started_by, input=input_)


def event_from_row(row: Row) -> Event:
    event_id, project_id, type_, subject, run_id, created_at, payload = row
    return Event(event_id=event_id, project_id=project_id, type=type_, subject=subject,
                 run_id=run_id, created_at=created_at,
                 payload=payload if isinstance(payload, dict) else {})


# --- argument checks (before a round trip; the server checks again) ------------------------

def _seconds(timeout: Timeout, what: str = "timeout") -> float:
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    if not seconds >= 0 or seconds == float("inf"):
        raise InvalidInput(f"{what} must be a finite number of seconds of 0 or more, not {timeout!r}")
    return seconds


def _spec(spec: Mapping[str, Any], what: str) -> Jsonb:
    if not isinstance(spec, Mapping):
        raise InvalidInput(f"{what} spec must be a mapping (a JSON object), not {type(spec).__name__}")
    return Jsonb(dict(spec))


# --- the calls -----------------------------------------------------------------------------

def put_agent(project_id: int, spec: Mapping[str, Any]) -> Call[int]:
    return Call("SELECT orchestration.put_agent(%s, %s)", (project_id, _spec(spec, "agent")), _int)


def put_workflow(project_id: int, spec: Mapping[str, Any]) -> Call[int]:
    return Call("SELECT orchestration.put_workflow(%s, %s)", (project_id, _spec(spec, "workflow")), _int)


def find_agent(project_id: int, name: str) -> Call[int]:
    return Call("SELECT orchestration.find_agent(%s, %s::text)", (project_id, name), _int)


def get_agent(project_id: int, name: str) -> Call[dict[str, Any]]:
    return Call("SELECT orchestration.get_agent(%s, %s::text)", (project_id, name), _json_object)


def find_workflow(project_id: int, name: str) -> Call[int]:
    return Call("SELECT orchestration.find_workflow(%s, %s::text)", (project_id, name), _int)


def get_workflow(project_id: int, name: str) -> Call[dict[str, Any]]:
    return Call("SELECT orchestration.get_workflow(%s, %s::text)", (project_id, name), _json_object)


def start(project_id: int, workflow: str, context: Optional[Mapping[str, Any]],
          idempotency_key: Optional[str], priority: int) -> Call[int]:
    if context is not None and not isinstance(context, Mapping):
        raise InvalidInput(f"run context must be a mapping (a JSON object), not {type(context).__name__}")
    if idempotency_key is not None and (not isinstance(idempotency_key, str) or not idempotency_key):
        raise InvalidInput("idempotency_key must be a non-empty string")
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise InvalidInput(f"priority must be an integer, not {type(priority).__name__}")
    doc = _trace.with_traceparent(dict(context or {}))
    return Call("SELECT orchestration.start_workflow(%s, %s::text, %s, %s::text, %s::int)",
                (project_id, workflow, Jsonb(doc), idempotency_key, priority), _int)


def get_run(run_id: int) -> Call[Run]:
    def convert(rows: list[Row]) -> Run:
        doc = _scalar(rows)
        if doc is None:
            # run_json is NULL for a run that does not exist or is of a project the caller
            # lacks; the server's functions say the same with this SQLSTATE.
            raise NotFound(f"run {run_id} does not exist", sqlstate="42704")
        return run_from_json(doc)
    return Call("SELECT orchestration.run_json(%s)", (run_id,), convert)


def list_runs(project_id: Optional[int], status: Optional[str], workflow: Optional[str],
              since: Optional[datetime], max_rows: int) -> Call[list[RunSummary]]:
    return Call(f"SELECT {_SUMMARY_COLUMNS} FROM orchestration.list_runs(%s, %s::text, %s::text, %s, %s)",
                (project_id, status, workflow, since, max_rows),
                lambda rows: [_summary(r) for r in rows])


def wait_for_run(run_id: int, seconds: float, until: str) -> Call[dict[str, Any]]:
    return Call("SELECT orchestration.wait_for_run(%s, %s::float8, %s::text)",
                (run_id, seconds, until), _json_object)


def latest_approval(run_id: int, node_key: str) -> Call[Optional[Approval]]:
    return Call(f"SELECT {_APPROVAL_COLUMNS} FROM orchestration.workflow_approvals a "
                "WHERE a.run_id = %s AND a.node_key = %s ORDER BY a.id DESC LIMIT 1",
                (run_id, node_key), lambda rows: _approval(rows[0]) if rows else None)


def approvals(run_id: int) -> Call[list[Approval]]:
    return Call(f"SELECT {_APPROVAL_COLUMNS} FROM orchestration.workflow_approvals a "
                "WHERE a.run_id = %s ORDER BY a.id", (run_id,),
                lambda rows: [_approval(r) for r in rows])


def pending_approvals(project_id: Optional[int], run_id: Optional[int]) -> Call[list[Approval]]:
    return Call("SELECT approval_id, project_id, run_id, workflow, node_key, agent, action, started_by::text, "
                "requested_at, expires_at, input FROM orchestration.pending_approvals "
                "WHERE (%s::int IS NULL OR project_id = %s::int) AND (%s::bigint IS NULL OR run_id = %s::bigint) "
                "ORDER BY approval_id", (project_id, project_id, run_id, run_id),
                lambda rows: [pending_approval(r) for r in rows])


def approve(approval_id: int, notes: Optional[str]) -> Call[None]:
    return Call("SELECT orchestration.approve(%s, %s::text)", (approval_id, notes), _none)


def reject(approval_id: int, notes: Optional[str]) -> Call[None]:
    return Call("SELECT orchestration.reject(%s, %s::text)", (approval_id, notes), _none)


def approve_node(run_id: int, node_key: str, notes: Optional[str]) -> Call[None]:
    return Call("SELECT orchestration.approve_node(%s, %s::text, %s::text)", (run_id, node_key, notes), _none)


def reject_node(run_id: int, node_key: str, notes: Optional[str]) -> Call[None]:
    return Call("SELECT orchestration.reject_node(%s, %s::text, %s::text)", (run_id, node_key, notes), _none)


def cancel(run_id: int, reason: Optional[str]) -> Call[None]:
    return Call("SELECT orchestration.cancel_run(%s, %s::text)", (run_id, reason), _none)


def retry(run_id: int) -> Call[None]:
    return Call("SELECT orchestration.retry_run(%s)", (run_id,), _none)


def attempts(run_id: int) -> Call[list[Attempt]]:
    return Call(f"SELECT {_ATTEMPT_COLUMNS} FROM orchestration.agent_runs WHERE run_id = %s ORDER BY id",
                (run_id,), lambda rows: [Attempt(*r) for r in rows])


def metric_samples(metric: Optional[str]) -> Call[list[MetricSample]]:
    return Call("SELECT metric, labels, value FROM orchestration.metric_samples "
                "WHERE %s::text IS NULL OR metric = %s::text ORDER BY metric, labels::text",
                (metric, metric),
                lambda rows: [MetricSample(m, {str(k): str(v) for k, v in (labels or {}).items()}, float(v))
                              for m, labels, v in rows])


def metrics_text() -> Call[str]:
    return Call("SELECT orchestration.metrics()", (), lambda rows: str(_scalar(rows) or ""))


def last_event_id() -> Call[int]:
    return Call("SELECT coalesce(max(id), 0) FROM orchestration.events", (), _int)


def events_after(after_id: int, max_rows: int) -> Call[list[Event]]:
    return Call(f"SELECT {_EVENT_COLUMNS} FROM orchestration.events_after(%s, %s)",
                (after_id, max_rows), lambda rows: [event_from_row(r) for r in rows])


LISTEN = "LISTEN orchestration_events"
PING = "SELECT 1"
