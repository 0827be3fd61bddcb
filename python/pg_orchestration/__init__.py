"""pg_orchestration: a typed Python client (sync and asyncio) for the pg_orchestration
PostgreSQL extension, over psycopg 3. Every call is a call of the extension's SQL API.

    from pg_orchestration import Client
    with Client.connect() as client:          # the libpq environment: PGHOST, PGPORT, ...
        run_id = client.start(1, "review", {"repo": "api"}, idempotency_key="push-42")
        run = client.wait(run_id, 60, until="finished")
"""
from .aio import AsyncClient
from .client import Client
from .errors import (Conflict, ApprovalRejected, InvalidInput, InvalidState, NotFound,
                     OrchestrationError, PermissionDenied, RunCancelled, RunFailed, WaitTimeout)
from .types import (FINAL_STATUSES, Approval, Attempt, Event, MetricSample, NodeState, Run,
                    RunSummary)

__version__ = "0.2.0"

__all__ = [
    "Client", "AsyncClient",
    "OrchestrationError", "InvalidInput", "NotFound", "PermissionDenied", "Conflict",
    "InvalidState", "RunFailed", "RunCancelled", "ApprovalRejected", "WaitTimeout",
    "Run", "NodeState", "RunSummary", "Attempt", "Approval", "Event", "MetricSample",
    "FINAL_STATUSES",
]
