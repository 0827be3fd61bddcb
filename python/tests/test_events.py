"""The event stream: each event of interest once, in order, across reconnects and
out-of-order commits."""
from __future__ import annotations

from typing import Any, Callable

import psycopg
import pytest

from conftest import PROJECT, backends
from pg_orchestration import Client, Event

CHAIN = ["orchestration.run.created", "orchestration.run.started", "orchestration.node.succeeded",
         "orchestration.node.succeeded", "orchestration.run.succeeded"]
APPROVED = ["orchestration.run.created", "orchestration.run.started", "orchestration.approval.requested",
            "orchestration.run.waiting_approval", "orchestration.approval.approved",
            "orchestration.run.resumed", "orchestration.node.succeeded", "orchestration.run.succeeded"]


def client_named(app_name: str) -> Client:
    """A client whose every connection (the stream's too) carries application_name."""
    def connect() -> psycopg.Connection[Any]:
        return psycopg.connect(autocommit=True, application_name=app_name)
    return Client(connect(), reconnect=connect)


def collect(stream: Any, until: Callable[[Event], bool], on_event: Callable[[Event], None] = lambda e: None
            ) -> list[Event]:
    got = []
    for event in stream:
        got.append(event)
        on_event(event)
        if until(event):
            break
    stream.close()
    return got


def test_the_events_of_one_run_in_order(client: Client) -> None:
    stream = client.events(project_id=PROJECT, idle_timeout=30)
    other = client.start(PROJECT, "chain", {"name": "other"})
    run_id = client.start(PROJECT, "chain", {"name": "Ada"})
    mine = client.events(run_id=run_id, after_id=0, idle_timeout=30)
    got = collect(mine, lambda e: e.type == "orchestration.run.succeeded")
    assert [e.type for e in got] == CHAIN
    assert [e.node_key for e in got if e.type == "orchestration.node.succeeded"] == ["a", "b"]
    assert got[-1].status == "SUCCESS" and got[-1].subject == f"run/{run_id}"
    assert got[0].payload["specversion"] == "1.0" and got[0].data["run_id"] == run_id
    # The project's stream (from before both starts) has both runs' events, each once.
    seen: list[Event] = []
    done = set()
    for event in stream:
        seen.append(event)
        if event.type == "orchestration.run.succeeded":
            done.add(event.run_id)
        if done == {other, run_id}:
            break
    stream.close()
    assert [e.type for e in seen if e.run_id == run_id] == CHAIN
    assert [e.type for e in seen if e.run_id == other] == CHAIN
    assert len({e.event_id for e in seen}) == len(seen)


def test_an_idle_stream_ends_after_its_idle_timeout(client: Client) -> None:
    run_id = client.start(PROJECT, "chain", {"name": "Ada"})
    client.wait(run_id, 30)
    # Nothing new for this finished run: the stream ends instead of blocking for ever.
    assert list(client.events(run_id=run_id, idle_timeout=0.3)) == []
    # From the start it has them all.
    assert [e.type for e in client.events(run_id=run_id, after_id=0, idle_timeout=0.3)] == CHAIN


def test_the_stream_survives_a_terminated_listener(deployed: None, admin: psycopg.Connection[Any],
                                                   app_name: str) -> None:
    client = client_named(app_name)
    run_id = client.start(PROJECT, "approved-greeting", {"name": "Ada"})
    stream = client.events(run_id=run_id, after_id=0, idle_timeout=30)
    terminated: list[int] = []

    def on_event(event: Event) -> None:
        if event.type == "orchestration.run.waiting_approval" and not terminated:
            # Kill the listening backend, then make the run go on while the stream is
            # without it: the events of the approval must still all arrive, once.
            terminated.extend(backends(admin, app_name, "LISTEN orchestration_events"))
            assert len(terminated) == 1
            admin.execute("SELECT pg_terminate_backend(%s)", terminated)
            admin.execute("SELECT orchestration.approve_node(%s, 'greet')", [run_id])
    got = collect(stream, lambda e: e.type == "orchestration.run.succeeded", on_event)
    assert terminated, "the run never waited for its approval"
    assert [e.type for e in got] == APPROVED
    assert len({e.event_id for e in got}) == len(got)
    assert [e.event_id for e in got] == sorted(e.event_id for e in got)
    client.close()
    client.connection.close()


def test_an_event_that_commits_late_with_a_smaller_id_is_not_lost(client: Client,
                                                                  admin: psycopg.Connection[Any]) -> None:
    stream = client.events(project_id=PROJECT, idle_timeout=30)
    with psycopg.connect() as slow:  # a transaction that takes its event id first, commits last
        late = slow.execute("SELECT orchestration.start_workflow(%s, 'chain', '{\"name\": \"late\"}')",
                            [PROJECT]).fetchone()[0]  # type: ignore[index]
        early = client.start(PROJECT, "chain", {"name": "early"})
        seen: list[Event] = []
        for event in stream:
            seen.append(event)
            if event.run_id == early and event.type == "orchestration.run.succeeded":
                break
        assert all(e.run_id != late for e in seen)
        slow.commit()
    for event in stream:
        seen.append(event)
        if event.run_id == late and event.type == "orchestration.run.succeeded":
            break
    stream.close()
    late_events = [e for e in seen if e.run_id == late]
    assert [e.type for e in late_events] == CHAIN
    # Its run.created has a smaller id than events delivered before it.
    assert late_events[0].event_id < max(e.event_id for e in seen if e.run_id == early)
    assert len({e.event_id for e in seen}) == len(seen)


def test_events_refuses_a_bad_page_size(client: Client) -> None:
    with pytest.raises(ValueError):
        client.events(page_size=0)
