"""AsyncClient: the same calls, awaited."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
import pytest

from conftest import PROJECT, backends
from pg_orchestration import AsyncClient, NotFound, PermissionDenied, RunFailed
from test_events import APPROVED

pytestmark = pytest.mark.asyncio


async def test_async_start_wait_approve(deployed: None) -> None:
    async with await AsyncClient.connect() as client:
        assert await client.put_workflow(PROJECT, {"name": "chain", "nodes": [
            {"id": "a", "agent": "greeter", "action": "greet", "inputs": {"name": "{{ context.name }}"}},
            {"id": "b", "agent": "greeter", "action": "greet", "inputs": {"name": "{{ context.name }}"},
             "depends_on": ["a"]}]}) == await client.find_workflow(PROJECT, "chain")
        run_id = await client.start(PROJECT, "approved-greeting", {"name": "Ada"})
        assert (await client.wait(run_id, 30)).status == "WAITING_APPROVAL"
        (approval,) = await client.pending_approvals(PROJECT, run_id=run_id)
        await client.approve(approval.approval_id, "ok")
        run = await client.wait(run_id, 30, "finished")
        assert run.outputs == {"greet": {"greeting": "hello Ada"}}
        assert (await client.get_run(run_id)).status == "SUCCESS"
        assert [r.run_id for r in await client.list_runs(PROJECT, max_rows=1)] == [run_id]


async def test_async_errors(deployed: None) -> None:
    async with await AsyncClient.connect() as client:
        with pytest.raises(NotFound) as caught:
            await client.start(PROJECT, "no-such-workflow")
        assert caught.value.sqlstate == "42704"
        run_id = await client.start(PROJECT, "failing", {"name": "Bob"})
        with pytest.raises(RunFailed) as failed:
            await client.wait(run_id, 30, "finished")
        assert failed.value.node_key == "broken"
    async with await AsyncClient.connect(user="pyclient_outsider") as outsider:
        with pytest.raises(PermissionDenied) as denied:
            await outsider.start(PROJECT, "chain")
        assert denied.value.sqlstate == "42501" and denied.value.hint is not None


async def test_async_wait_goes_on_after_its_backend_is_terminated(deployed: None, admin: psycopg.Connection[Any],
                                                                  app_name: str) -> None:
    async with await AsyncClient.connect(application_name=app_name) as client:
        run_id = await client.start(PROJECT, "approved-greeting", {"name": "Ada"})
        await client.wait(run_id, 30)
        first_pid = client.connection.info.backend_pid
        waiting = asyncio.create_task(client.wait(run_id, 30, "finished"))
        for _ in range(200):  # bounded: until the wait is in the server
            if backends(admin, app_name, "%wait_for_run%") == [first_pid]:
                break
            await asyncio.sleep(0.05)
        admin.execute("SELECT pg_terminate_backend(%s)", [first_pid])
        admin.execute("SELECT orchestration.approve_node(%s, 'greet')", [run_id])
        run = await waiting
        assert run.status == "SUCCESS"
        assert client.connection.info.backend_pid != first_pid


async def test_async_events_survive_a_terminated_listener(deployed: None, admin: psycopg.Connection[Any],
                                                         app_name: str) -> None:
    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(autocommit=True, application_name=app_name)
    client = AsyncClient(await connect(), reconnect=connect)
    run_id = await client.start(PROJECT, "approved-greeting", {"name": "Ada"})
    got = []
    terminated: list[int] = []
    async with contextlib.aclosing(await client.events(run_id=run_id, after_id=0, idle_timeout=30)) as stream:
        async for event in stream:
            got.append(event)
            if event.type == "orchestration.run.waiting_approval":
                terminated = backends(admin, app_name, "LISTEN orchestration_events")
                admin.execute("SELECT pg_terminate_backend(%s)", terminated)
                admin.execute("SELECT orchestration.approve_node(%s, 'greet')", [run_id])
            if event.type == "orchestration.run.succeeded":
                break
    assert len(terminated) == 1
    assert [e.type for e in got] == APPROVED
    assert len({e.event_id for e in got}) == len(got)
    await client.connection.close()
