"""Starting, waiting, approving, cancelling and retrying runs; idempotency and traces."""
from __future__ import annotations

import sys
import threading
import time
import types
from typing import Any, Iterator, Optional

import psycopg
import pytest

from conftest import PROJECT, backends, wait_until
from pg_orchestration import (ApprovalRejected, Client, Conflict, InvalidInput, InvalidState, NotFound,
                              RunCancelled, RunFailed, WaitTimeout)


def test_wait_settles_at_an_approval_then_finishes(client: Client) -> None:
    run_id = client.start(PROJECT, "approved-greeting", {"name": "Ada"})
    run = client.wait(run_id, 30)
    assert run.status == "WAITING_APPROVAL"
    assert run.node("greet").status == "WAITING_APPROVAL"
    (approval,) = client.pending_approvals(PROJECT, run_id=run_id)
    assert (approval.node_key, approval.workflow, approval.agent, approval.input) == \
        ("greet", "approved-greeting", "greeter", {"name": "Ada"})
    client.approve_node(run_id, "greet", "fine")
    run = client.wait(run_id, 30, until="finished")
    assert run.status == "SUCCESS" and not run.timed_out
    assert run.outputs == {"greet": {"greeting": "hello Ada"}}
    assert [(a.status, a.responded_by, a.notes) for a in client.approvals(run_id)] == \
        [("APPROVED", "postgres", "fine")]


def test_approve_by_approval_id(client: Client) -> None:
    run_id = client.start(PROJECT, "approved-greeting", {"name": "Grace"})
    client.wait(run_id, 30)
    (approval,) = client.pending_approvals(run_id=run_id)
    client.approve(approval.approval_id)
    assert client.wait(run_id, 30, "finished").node("greet").output == {"greeting": "hello Grace"}
    assert client.pending_approvals(run_id=run_id) == []


def test_a_failed_node_raises_run_failed_with_its_key_and_error(client: Client) -> None:
    run_id = client.start(PROJECT, "failing", {"name": "Bob"})
    with pytest.raises(RunFailed) as caught:
        client.wait(run_id, 30, "finished")
    failure = caught.value
    assert not isinstance(failure, ApprovalRejected)
    assert failure.node_key == "broken"
    assert failure.node_error is not None and "cannot greet Bob" in failure.node_error
    assert failure.run.status == "FAILED"
    assert failure.run.node("first").status == "SUCCESS"
    attempts = client.attempts(run_id)
    assert [(a.node_key, a.status) for a in attempts] == [("first", "SUCCESS"), ("broken", "FAILED")]
    assert attempts[1].error is not None and "cannot greet Bob" in attempts[1].error
    # retry runs the failed node again (and it fails again); the successful one is kept.
    client.retry(run_id)
    with pytest.raises(RunFailed):
        client.wait(run_id, 30, "finished")
    assert [a.node_key for a in client.attempts(run_id)] == ["first", "broken", "broken"]


def test_a_rejection_raises_approval_rejected(client: Client) -> None:
    run_id = client.start(PROJECT, "approved-greeting", {"name": "Mallory"})
    client.wait(run_id, 30)
    client.reject_node(run_id, "greet", "not on a Friday")
    with pytest.raises(ApprovalRejected) as caught:
        client.wait(run_id, 30, "finished")
    rejected = caught.value
    assert isinstance(rejected, RunFailed)
    assert rejected.node_key == "greet"
    assert (rejected.approval.responded_by, rejected.approval.notes) == ("postgres", "not on a Friday")
    assert str(rejected) == f"run {run_id}: node 'greet' was rejected by postgres: not on a Friday"


def test_a_wrong_node_is_not_found_with_the_runs_nodes_as_hint(client: Client) -> None:
    run_id = client.start(PROJECT, "approved-greeting", {"name": "Ada"})
    client.wait(run_id, 30)
    with pytest.raises(NotFound) as caught:
        client.approve_node(run_id, "gret")
    assert caught.value.hint == "Its nodes: greet."
    client.cancel(run_id)


def test_cancel_raises_run_cancelled_with_the_reason(client: Client) -> None:
    run_id = client.start(PROJECT, "approved-greeting", {"name": "Ada"})
    client.wait(run_id, 30)
    client.cancel(run_id, "deploy window closed")
    with pytest.raises(RunCancelled) as caught:
        client.wait(run_id, 30)
    assert caught.value.reason == "cancelled by postgres: deploy window closed"
    with pytest.raises(InvalidState, match="only FAILED runs can be retried"):
        client.retry(run_id)


def test_wait_timeout_carries_the_run_as_it_was(client: Client) -> None:
    run_id = client.start(PROJECT, "approved-greeting", {"name": "Ada"})
    began = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        client.wait(run_id, 0.5, until="finished")
    assert 0.5 <= time.monotonic() - began < 5
    assert caught.value.run.status == "WAITING_APPROVAL" and caught.value.run.timed_out
    client.cancel(run_id)


def test_wait_refuses_bad_arguments(client: Client) -> None:
    run_id = client.start(PROJECT, "chain", {"name": "Ada"})
    with pytest.raises(InvalidInput, match="until"):
        client.wait(run_id, 5, until="done")
    with pytest.raises(InvalidInput, match="timeout"):
        client.wait(run_id, -1)
    with pytest.raises(NotFound):
        client.wait(999999999, 1)


def test_wait_goes_on_after_its_backend_is_terminated(deployed: None, admin: psycopg.Connection[Any],
                                                      app_name: str) -> None:
    with Client.connect(application_name=app_name) as client:
        run_id = client.start(PROJECT, "approved-greeting", {"name": "Ada"})
        client.wait(run_id, 30)
        first_pid = client.connection.info.backend_pid

        def terminate_then_approve() -> None:
            wait_until(lambda: backends(admin, app_name, "%wait_for_run%") == [first_pid], what="the wait")
            admin.execute("SELECT pg_terminate_backend(%s)", [first_pid])
            # The run changes only after the wait has lost its backend: the new one must see it.
            admin.execute("SELECT orchestration.approve_node(%s, 'greet')", [run_id])
        helper = threading.Thread(target=terminate_then_approve)
        helper.start()
        run = client.wait(run_id, 30, "finished")
        helper.join()
        assert run.status == "SUCCESS"
        assert client.connection.info.backend_pid != first_pid


def test_list_runs_filters(client: Client) -> None:
    run_id = client.start(PROJECT, "chain", {"name": "Ada"})
    client.wait(run_id, 30, "finished")
    runs = client.list_runs(PROJECT, workflow="chain", status="SUCCESS", max_rows=5)
    assert runs and runs[0].run_id == run_id
    assert all(r.workflow == "chain" and r.status == "SUCCESS" for r in runs)
    assert (runs[0].nodes, runs[0].succeeded, runs[0].percent_done) == (2, 2, 100.0)
    with pytest.raises(InvalidInput) as caught:
        client.list_runs(status="DONE")
    assert caught.value.hint is not None and "SUCCESS" in caught.value.hint


def test_metrics(client: Client) -> None:
    run_id = client.start(PROJECT, "chain", {"name": "Ada"})
    client.wait(run_id, 30, "finished")
    samples = client.metric_samples("orchestration_runs")
    ours = [s for s in samples if s.labels == {"project": str(PROJECT), "status": "SUCCESS"}]
    assert len(ours) == 1 and ours[0].value >= 1
    text = client.metrics_text()
    assert "# TYPE orchestration_runs gauge" in text
    assert f'orchestration_runs{{project="{PROJECT}",status="SUCCESS"}} {ours[0].value:g}' in text


def test_start_with_an_idempotency_key_returns_the_same_run(client: Client, admin: psycopg.Connection[Any]) -> None:
    key = f"order-{time.time_ns()}"
    first = client.start(PROJECT, "chain", {"name": "Ada"}, idempotency_key=key)
    assert client.start(PROJECT, "chain", {"name": "Ada"}, idempotency_key=key) == first
    assert client.start(PROJECT, "chain", {"name": "Ada"}, idempotency_key=key + "-2") != first
    assert client.start(PROJECT, "chain", {"name": "Ada"}) != first
    assert client.get_run(first).idempotency_key == key
    # The same key for another request is a conflict, not that run.
    with pytest.raises(Conflict) as caught:
        client.start(PROJECT, "chain", {"name": "Eve"}, idempotency_key=key)
    assert caught.value.sqlstate == "23505"
    assert str(caught.value) == f'idempotency key "{key}" was used for run {first} with another context'
    assert caught.value.hint == "A key names one start request: use a new key for a new request."


def test_an_empty_idempotency_key_is_refused(client: Client) -> None:
    with pytest.raises(InvalidInput, match="idempotency_key"):
        client.start(PROJECT, "chain", {"name": "Ada"}, idempotency_key="")


# --- trace context --------------------------------------------------------------------------

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


@pytest.fixture
def fake_opentelemetry() -> Iterator[None]:
    """A stand-in for the opentelemetry API with a current, sampled span."""
    context = types.SimpleNamespace(trace_id=TRACE_ID, span_id=SPAN_ID, trace_flags=1, is_valid=True)
    span = types.SimpleNamespace(get_span_context=lambda: context)
    package = types.ModuleType("opentelemetry")
    trace = types.ModuleType("opentelemetry.trace")
    trace.get_current_span = lambda: span  # type: ignore[attr-defined]
    package.trace = trace  # type: ignore[attr-defined]
    yield from _opentelemetry_as(package, trace)


@pytest.fixture
def no_opentelemetry() -> Iterator[None]:
    """opentelemetry not importable (a None in sys.modules makes the import fail)."""
    yield from _opentelemetry_as(None, None)


def _opentelemetry_as(package: Optional[types.ModuleType], trace: Optional[types.ModuleType]) -> Iterator[None]:
    """sys.modules' opentelemetry and opentelemetry.trace replaced while the test runs."""
    saved = {name: sys.modules.get(name) for name in ("opentelemetry", "opentelemetry.trace")}
    sys.modules.update({"opentelemetry": package, "opentelemetry.trace": trace})  # type: ignore[dict-item]
    yield
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


def run_row(db: psycopg.Connection[Any], run_id: int) -> tuple[Any, ...]:
    row = db.execute("SELECT context, traceparent FROM orchestration.workflow_runs WHERE id = %s",
                     [run_id]).fetchone()
    assert row is not None
    return tuple(row)


def test_start_continues_the_current_opentelemetry_span(fake_opentelemetry: None, client: Client,
                                                        admin: psycopg.Connection[Any]) -> None:
    run_id = client.start(PROJECT, "chain", {"name": "Ada"})
    context, traceparent = run_row(admin, run_id)
    assert context["traceparent"] == f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"
    # The run is a child span: the same trace, a span of its own.
    assert traceparent.split("-")[1] == f"{TRACE_ID:032x}"
    assert traceparent.split("-")[2] != f"{SPAN_ID:016x}"
    # A traceparent the caller put in the context wins.
    mine = "00-11111111111111111111111111111111-2222222222222222-01"
    other = client.start(PROJECT, "chain", {"name": "Ada", "traceparent": mine})
    assert run_row(admin, other)[0]["traceparent"] == mine
    # A retry of a keyed start under another span is the same request, not a Conflict.
    keyed = client.start(PROJECT, "chain", {"name": "Ada"}, idempotency_key="retried-under-another-span")
    assert client.start(PROJECT, "chain", {"name": "Ada", "traceparent": mine},
                        idempotency_key="retried-under-another-span") == keyed


def test_start_without_opentelemetry_sends_no_traceparent(no_opentelemetry: None, client: Client,
                                                          admin: psycopg.Connection[Any]) -> None:
    run_id = client.start(PROJECT, "chain", {"name": "Ada"})
    context, traceparent = run_row(admin, run_id)
    assert context == {"name": "Ada"}
    assert traceparent.split("-")[1] != f"{TRACE_ID:032x}"  # a trace of its own


def test_start_with_a_priority(client: Client) -> None:
    urgent = client.start(PROJECT, "chain", {"name": "Ada"}, priority=10)
    assert client.get_run(urgent).priority == 10
    assert client.get_run(client.start(PROJECT, "chain", {"name": "Ada"})).priority == 0
    with pytest.raises(InvalidInput) as caught:
        client.start(PROJECT, "chain", {"name": "Ada"}, priority=5000)
    assert caught.value.sqlstate == "22023"
    assert str(caught.value) == "priority must be between -1000 and 1000, not 5000"
