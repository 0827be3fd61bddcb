"""Fixtures: the test cluster from the libpq environment (PGHOST, PGPORT, PGDATABASE,
PGUSER: a superuser), with the extension and the scheduler running in PGDATABASE.

Everything the tests define lives in project PROJECT; RULE agents (SQL functions) do the
work, so no container is needed. OUTSIDER is a role with every orchestration role but
not the project.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Iterator

import psycopg
import pytest

from pg_orchestration import Client

PROJECT = 41
OUTSIDER = "pyclient_outsider"

FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION public.pyclient_greet(input jsonb) RETURNS jsonb LANGUAGE sql
       AS $$ SELECT jsonb_build_object('greeting', 'hello ' || (input->>'name')) $$""",
    """CREATE OR REPLACE FUNCTION public.pyclient_fail(input jsonb) RETURNS jsonb LANGUAGE plpgsql
       AS $$ BEGIN RAISE EXCEPTION 'cannot greet %', input->>'name'; END $$""",
]
AGENTS = [
    {"name": "greeter", "type": "RULE", "function": "public.pyclient_greet",
     "capabilities": [{"name": "greet"}]},
    {"name": "failer", "type": "RULE", "function": "public.pyclient_fail",
     "capabilities": [{"name": "greet"}]},
]
GREET = {"agent": "greeter", "action": "greet", "inputs": {"name": "{{ context.name }}"}}
WORKFLOWS = [
    # one node that waits for an approval
    {"name": "approved-greeting", "nodes": [{"id": "greet", **GREET, "approval_required": True}]},
    # a -> b, no approvals
    {"name": "chain", "nodes": [{"id": "a", **GREET}, {"id": "b", **GREET, "depends_on": ["a"]}]},
    # first succeeds, then a node whose function raises
    {"name": "failing", "nodes": [{"id": "first", **GREET},
                                   {"id": "broken", "agent": "failer", "action": "greet",
                                    "inputs": {"name": "{{ context.name }}"}, "depends_on": ["first"]}]},
]


def admin_connect(**kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(autocommit=True, **kwargs)


@pytest.fixture(scope="session")
def deployed() -> None:
    """The project's functions, agents and workflows, and the outsider role."""
    with admin_connect() as db:
        assert db.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_orchestration'"
                          ).fetchone() == (1,), "CREATE EXTENSION pg_orchestration in PGDATABASE first"
        for sql in FUNCTIONS:
            db.execute(sql)
        with Client(db) as client:
            for agent in AGENTS:
                client.put_agent(PROJECT, agent)
            for workflow in WORKFLOWS:
                client.put_workflow(PROJECT, workflow)
        if db.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", [OUTSIDER]).fetchone() == (0,):
            db.execute(f"CREATE ROLE {OUTSIDER} LOGIN")
        db.execute(f"GRANT orchestration_admin, orchestration_operator, orchestration_approver TO {OUTSIDER}")


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection of its own (to look at and act on the server beside the client)."""
    with admin_connect() as db:
        yield db


@pytest.fixture
def client(deployed: None) -> Iterator[Client]:
    with Client.connect() as c:
        yield c


@pytest.fixture
def app_name() -> str:
    """A unique application_name, to find a client's backends in pg_stat_activity."""
    return f"pyclient-{uuid.uuid4().hex[:12]}"


def wait_until(condition: Callable[[], bool], seconds: float = 10.0, what: str = "condition") -> None:
    """A bounded wait for a condition the test cannot be told about otherwise."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def backends(db: psycopg.Connection[Any], application_name: str, query_like: str = "%") -> list[int]:
    """The pids of this database's backends of that application_name whose current (or
    last) query is like query_like."""
    rows = db.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                      "AND application_name = %s AND query LIKE %s ORDER BY pid",
                      [application_name, query_like]).fetchall()
    return [r[0] for r in rows]
