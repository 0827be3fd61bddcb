"""wait(): the logic shared by Client.wait and AsyncClient.wait, as a generator of Calls.

The driver (sync or async) executes each Call the generator yields and sends the rows'
result back. When the connection drops during a Call, the driver reconnects and sends
RETRY instead: the generator then asks again with the time that is left. The server's
wait_for_run sleeps on a latch (no polling); it is called in chunks of at most
chunk_seconds so that a connection that dies silently costs at most one chunk.
"""
from __future__ import annotations

import time
from typing import Any, Generator

from . import _calls
from .errors import ApprovalRejected, InvalidInput, RunCancelled, RunFailed, WaitTimeout
from .types import Run

__all__ = ["RETRY", "wait_plan"]


class _Retry:
    def __repr__(self) -> str:
        return "RETRY"


#: Sent into a plan by its driver after a reconnect: "ask again".
RETRY: Any = _Retry()

UNTIL = ("settled", "finished")


def wait_plan(run_id: int, timeout: _calls.Timeout, until: str,
              chunk_seconds: float) -> Generator[_calls.Call[Any], Any, Run]:
    """Waits until the run is settled/finished; returns the Run (SUCCESS, or
    WAITING_APPROVAL when until is "settled"), else raises RunFailed, ApprovalRejected,
    RunCancelled or WaitTimeout."""
    if until not in UNTIL:
        raise InvalidInput(f'until must be "settled" or "finished", not {until!r}',
                           hint="settled: until the run has ended or waits for an approval; "
                                "finished: until it has ended.")
    total = _calls._seconds(timeout)
    deadline = time.monotonic() + total
    while True:
        remaining = max(0.0, deadline - time.monotonic())
        result = yield _calls.wait_for_run(run_id, min(remaining, chunk_seconds), until)
        if result is RETRY:
            continue
        run = _calls.run_from_json(result)
        if not run.timed_out:
            break
        if remaining <= chunk_seconds:
            raise WaitTimeout(run, total, until)
    if run.status == "CANCELLED":
        raise RunCancelled(run)
    if run.status != "FAILED":
        return run
    node = run.failed_node
    if node is not None:
        # A rejected (or expired) approval fails its node at once: the node's latest
        # approval being REJECTED is what tells a rejection from an agent's failure.
        approval = RETRY
        while approval is RETRY:
            approval = yield _calls.latest_approval(run.run_id, node.node_key)
        if approval is not None and approval.status == "REJECTED":
            raise ApprovalRejected(run, approval)
    raise RunFailed(run)
