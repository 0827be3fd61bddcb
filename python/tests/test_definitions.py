"""Deploying agents and workflows, and the errors a caller gets: SQLSTATE, detail, hint."""
from __future__ import annotations

from typing import Any

import psycopg
import pytest

from conftest import AGENTS, OUTSIDER, PROJECT, WORKFLOWS
from pg_orchestration import (Client, InvalidInput, InvalidState, NotFound, OrchestrationError,
                              PermissionDenied)


def updated_at(db: psycopg.Connection[Any], table: str, name: str) -> Any:
    row = db.execute(f"SELECT updated_at FROM orchestration.{table} WHERE project_id = %s AND name = %s",
                     [PROJECT, name]).fetchone()
    assert row is not None
    return row[0]


def test_put_agent_is_idempotent_and_updates_by_name(client: Client, admin: psycopg.Connection[Any]) -> None:
    spec = {"name": "idem-agent", "type": "RULE", "function": "public.pyclient_greet",
            "capabilities": [{"name": "greet"}]}
    first = client.put_agent(PROJECT, spec)
    stamp = updated_at(admin, "agents", "idem-agent")
    assert client.put_agent(PROJECT, spec) == first
    assert updated_at(admin, "agents", "idem-agent") == stamp, "the same spec again changes nothing"
    assert client.put_agent(PROJECT, {**spec, "version": "2.0.0"}) == first
    assert client.get_agent(PROJECT, "idem-agent")["version"] == "2.0.0"
    assert client.find_agent(PROJECT, "idem-agent") == first


def test_put_workflow_is_idempotent_and_found_by_name(client: Client, admin: psycopg.Connection[Any]) -> None:
    spec = WORKFLOWS[1]
    workflow_id = client.put_workflow(PROJECT, spec)
    stamp = updated_at(admin, "workflows", spec["name"])
    assert client.put_workflow(PROJECT, spec) == workflow_id
    assert updated_at(admin, "workflows", spec["name"]) == stamp
    assert client.find_workflow(PROJECT, "chain") == workflow_id
    workflow = client.get_workflow(PROJECT, "chain")
    assert workflow["id"] == workflow_id
    assert [n["id"] for n in workflow["nodes"]] == ["a", "b"]


def test_a_bad_spec_is_invalid_input_with_the_servers_hint(client: Client) -> None:
    with pytest.raises(InvalidInput) as caught:
        client.put_agent(PROJECT, {**AGENTS[0], "name": "typo", "function": None,
                                   "functon": "public.pyclient_greet"})
    assert caught.value.sqlstate == "22023"
    assert 'Is "functon" a misspelling of "function"?' == caught.value.hint
    assert "function" in str(caught.value)
    assert isinstance(caught.value, OrchestrationError)


def test_a_spec_that_is_not_a_mapping_is_refused_before_the_server(client: Client) -> None:
    with pytest.raises(InvalidInput, match="mapping"):
        client.put_workflow(PROJECT, ["not", "a", "spec"])  # type: ignore[arg-type]


def test_missing_names_are_not_found(client: Client) -> None:
    with pytest.raises(NotFound) as caught:
        client.find_agent(PROJECT, "no-such-agent")
    assert caught.value.sqlstate == "42704"
    assert str(caught.value) == f'agent "no-such-agent" does not exist in project {PROJECT}'
    with pytest.raises(NotFound):
        client.get_workflow(PROJECT, "no-such-workflow")
    with pytest.raises(NotFound, match="does not exist"):
        client.start(PROJECT, "no-such-workflow")
    with pytest.raises(NotFound, match="run 999999999 does not exist"):
        client.get_run(999999999)


def test_a_role_without_the_project_gets_permission_denied(deployed: None, client: Client) -> None:
    run_id = client.start(PROJECT, "chain", {"name": "Ada"})
    client.wait(run_id, 30)
    with Client.connect(user=OUTSIDER) as outsider:
        with pytest.raises(PermissionDenied) as caught:
            outsider.put_agent(PROJECT, AGENTS[0])
        assert caught.value.sqlstate == "42501"
        assert str(caught.value) == f"permission denied for project {PROJECT}"
        assert caught.value.hint is not None and "grant_project" in caught.value.hint
        with pytest.raises(PermissionDenied):
            outsider.start(PROJECT, "chain", {"name": "Eve"})
        # Another project's run does not exist for it (row-level security), nor its events.
        with pytest.raises(NotFound):
            outsider.get_run(run_id)
        with pytest.raises(NotFound):
            outsider.cancel(run_id)
        assert [r.run_id for r in outsider.list_runs()] == []
        assert list(outsider.events(after_id=0, idle_timeout=0.2)) == []


def test_invalid_state_carries_the_servers_detail(client: Client) -> None:
    run_id = client.start(PROJECT, "approved-greeting", {"name": "Ada"})
    client.wait(run_id, 30)
    (approval,) = client.pending_approvals(PROJECT, run_id=run_id)
    client.reject(approval.approval_id, "not today")
    with pytest.raises(InvalidState) as caught:
        client.approve(approval.approval_id)
    assert caught.value.sqlstate == "55000"
    assert str(caught.value) == f"approval {approval.approval_id} was already answered: REJECTED by postgres"
    assert caught.value.detail == "Notes: not today"
    with pytest.raises(InvalidState, match="has already finished"):
        client.cancel(run_id)


def test_client_wraps_a_connection_in_a_transaction_of_the_callers(client: Client,
                                                                  admin: psycopg.Connection[Any]) -> None:
    # With autocommit off the calls join the caller's transaction: a rollback leaves no run.
    with psycopg.connect() as conn:
        wrapped = Client(conn)
        run_id = wrapped.start(PROJECT, "chain", {"name": "rolled back"})
        conn.rollback()
    assert admin.execute("SELECT count(*) FROM orchestration.workflow_runs WHERE id = %s",
                         [run_id]).fetchone() == (0,)
