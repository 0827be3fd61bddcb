"""The typed results: frozen dataclasses built from what the SQL returns.

Field names are the SQL's (run_id, node_key, ...). JSON values (outputs, context, event
data) stay plain Python objects (dict, list, str, ...); timestamps are aware datetimes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Optional

__all__ = ["NodeState", "Run", "RunSummary", "Attempt", "Approval", "Event", "MetricSample",
           "FINAL_STATUSES"]

#: Run statuses after which nothing changes any more (but retry_run of a FAILED run).
FINAL_STATUSES = frozenset({"SUCCESS", "FAILED", "CANCELLED"})


@dataclass(frozen=True)
class NodeState:
    """One node of a run, as run_json / wait_for_run report it."""
    node_key: str
    status: str
    attempt: int
    output: Any
    error: Optional[str]
    skip_reason: Optional[str]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    duration_ms: Optional[int]


@dataclass(frozen=True)
class Run:
    """A run and its nodes (run_json / wait_for_run). timed_out: the wait that returned it
    ended before the run got where it was waited for; idempotency_key: the key it was
    started with, if any; priority: its start's priority (higher is claimed first)."""
    run_id: int
    project_id: int
    workflow: str
    workflow_version: int
    status: str
    error: Optional[str]
    trigger: str
    started_by: str
    traceparent: Optional[str]
    created_at: datetime
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    duration_ms: Optional[int]
    nodes: tuple[NodeState, ...]
    timed_out: bool = False
    idempotency_key: Optional[str] = None
    priority: int = 0

    def node(self, node_key: str) -> NodeState:
        """The node of that key; KeyError naming the run's nodes if there is none."""
        for n in self.nodes:
            if n.node_key == node_key:
                return n
        raise KeyError(f"run {self.run_id} has no node {node_key!r} "
                       f"(its nodes: {', '.join(n.node_key for n in self.nodes)})")

    @property
    def outputs(self) -> dict[str, Any]:
        """Each node's output by node key (None for nodes without one)."""
        return {n.node_key: n.output for n in self.nodes}

    @property
    def failed_node(self) -> Optional[NodeState]:
        """The first FAILED node (in level order), or None."""
        return next((n for n in self.nodes if n.status == "FAILED"), None)

    @property
    def finished(self) -> bool:
        """SUCCESS, FAILED or CANCELLED."""
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class RunSummary:
    """A row of list_runs / the run_summary view: counts of nodes by status and timings."""
    run_id: int
    project_id: int
    workflow: str
    status: str
    nodes: int
    succeeded: int
    failed: int
    running: int
    pending: int
    waiting: int
    skipped: int
    cancelled: int
    percent_done: float
    trigger: str
    started_by: str
    created_at: datetime
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    elapsed: timedelta
    error: Optional[str]


@dataclass(frozen=True)
class Attempt:
    """One attempt of an agent at a node of a run (a row of orchestration.agent_runs)."""
    attempt_id: int
    run_id: int
    node_key: Optional[str]
    agent_name: str
    attempt: int
    status: str
    input: Any
    output: Any
    error: Optional[str]
    exit_code: Optional[int]
    log_tail: Optional[str]
    container_id: Optional[str]
    traceparent: Optional[str]
    started_at: datetime
    finished_at: Optional[datetime]
    duration_ms: Optional[int]


@dataclass(frozen=True)
class Approval:
    """An approval request of a node (orchestration.workflow_approvals, with the
    pending_approvals view's columns). status: PENDING, APPROVED or REJECTED."""
    approval_id: int
    project_id: int
    run_id: int
    node_key: str
    status: str
    requested_at: datetime
    expires_at: Optional[datetime]
    responded_at: Optional[datetime]
    responded_by: Optional[str]
    notes: Optional[str]
    workflow: Optional[str] = None
    agent: Optional[str] = None
    action: Optional[str] = None
    started_by: Optional[str] = None
    input: Any = None


@dataclass(frozen=True)
class Event:
    """An event of the outbox (events_after): a CloudEvents 1.0 document in payload;
    data is its "data" (project_id, run_id, node_key, status, error, traceparent ...)."""
    event_id: int
    project_id: int
    type: str
    subject: str
    run_id: Optional[int]
    created_at: datetime
    payload: dict[str, Any] = field(repr=False)

    @property
    def data(self) -> dict[str, Any]:
        """The CloudEvent's data object."""
        data = self.payload.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def node_key(self) -> Optional[str]:
        """The node the event is about, if any."""
        key = self.data.get("node_key")
        return key if isinstance(key, str) else None

    @property
    def status(self) -> Optional[str]:
        """The status the event reports, if any."""
        status = self.data.get("status")
        return status if isinstance(status, str) else None


@dataclass(frozen=True)
class MetricSample:
    """A row of orchestration.metric_samples: a metric, its labels and value."""
    metric: str
    labels: dict[str, str]
    value: float
