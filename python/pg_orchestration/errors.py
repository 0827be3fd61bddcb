"""Exceptions: one class per failure a caller handles, all under OrchestrationError.

Errors the server raises are mapped from their SQLSTATE (the codes the extension's SQL
raises, see extension/*.sql: ERRCODE); the server's message, detail and hint are kept.
The failures of a run that was waited for (RunFailed, RunCancelled, ApprovalRejected,
WaitTimeout) come from the run's final state and carry the Run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import psycopg

if TYPE_CHECKING:
    from .types import Approval, Run

__all__ = [
    "OrchestrationError", "InvalidInput", "NotFound", "PermissionDenied", "Conflict",
    "InvalidState", "RunFailed", "RunCancelled", "ApprovalRejected", "WaitTimeout",
    "from_psycopg",
]


class OrchestrationError(Exception):
    """Base of every error of this package.

    sqlstate, detail and hint are the server's (None for failures of a waited-for run).
    A server error whose SQLSTATE has no class of its own below arrives as this class.
    """

    def __init__(self, message: str, *, sqlstate: Optional[str] = None,
                 detail: Optional[str] = None, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidInput(OrchestrationError):
    """A bad spec or argument: a field missing, misspelt or out of range, a NULL, a bad
    context, an unknown status, a RULE function that does not exist
    (SQLSTATE class 22, 42703, 42883)."""


class NotFound(OrchestrationError):
    """The agent, workflow, run, approval, node or role does not exist, or belongs to a
    project the caller lacks (the server does not tell those apart) (42704)."""


class PermissionDenied(OrchestrationError):
    """The calling role lacks the orchestration role or the project (42501)."""


class Conflict(OrchestrationError):
    """A unique key is taken (23505): an idempotency key the project used for another
    start (another workflow or context), or a name the project already has."""


class InvalidState(OrchestrationError):
    """The object is not in a state that allows the call: an approval already answered or
    expired, a run already finished (cancel) or not FAILED (retry), an agent still used
    (55000, 2BP01)."""


class RunFailed(OrchestrationError):
    """The run ended FAILED. node_key and node_error name the (first) failed node."""

    def __init__(self, run: Run) -> None:
        node = run.failed_node
        self.run = run
        self.node_key: Optional[str] = node.node_key if node else None
        self.node_error: Optional[str] = node.error if node else None
        super().__init__(f"run {run.run_id} failed: {run.error or self.node_error or 'no error recorded'}")


class RunCancelled(OrchestrationError):
    """The run ended CANCELLED; reason is the run's error ("cancelled by ...: reason")."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.reason = run.error
        super().__init__(f"run {run.run_id} was cancelled: {run.error or 'no reason given'}")


class ApprovalRejected(RunFailed):
    """The run failed because an approver rejected a node (or its approval expired).

    A RunFailed as well; approval is the rejected approval (responded_by, notes).
    """

    def __init__(self, run: Run, approval: Approval) -> None:
        super().__init__(run)
        self.approval = approval
        self.node_key = approval.node_key
        self.message = (f"run {run.run_id}: node {approval.node_key!r} was rejected"
                        + (f" by {approval.responded_by}" if approval.responded_by else "")
                        + (f": {approval.notes}" if approval.notes else ""))
        self.args = (self.message,)


class WaitTimeout(OrchestrationError):
    """The run did not reach the state waited for in time; run is its state at the end."""

    def __init__(self, run: Run, timeout: float, until: str) -> None:
        self.run = run
        self.timeout = timeout
        self.until = until
        super().__init__(f"run {run.run_id} is still {run.status} after {timeout:g} s "
                         f"(waited until {until})")


# SQLSTATE → class. Exact codes first, then the class (first two characters).
_BY_CODE: dict[str, type[OrchestrationError]] = {
    "42501": PermissionDenied,   # insufficient_privilege
    "42704": NotFound,           # undefined_object
    "42703": InvalidInput,       # undefined_column (a trigger naming a column the table lacks)
    "42883": InvalidInput,       # undefined_function (a RULE function that does not exist)
    "23505": Conflict,      # unique_violation
    "55000": InvalidState,       # object_not_in_prerequisite_state
    "2BP01": InvalidState,       # dependent_objects_still_exist
    "54000": InvalidInput,       # program_limit_exceeded (a secret value too long)
}
_BY_CLASS: dict[str, type[OrchestrationError]] = {
    "22": InvalidInput,          # data exception: invalid_parameter_value, null_value_not_allowed, bad JSON ...
}


def from_psycopg(error: psycopg.Error) -> Optional[OrchestrationError]:
    """The OrchestrationError for an error the server raised; None for one it did not
    (no SQLSTATE: a client-side or connection failure, which the caller re-raises as is).

    A connection the server closed (admin_shutdown, class 08, 57P0x) is not mapped either:
    it is psycopg.OperationalError, which wait() and events() handle by reconnecting.
    """
    sqlstate = error.sqlstate
    if sqlstate is None or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03"):
        return None
    cls = _BY_CODE.get(sqlstate) or _BY_CLASS.get(sqlstate[:2]) or OrchestrationError
    diag = error.diag
    return cls(diag.message_primary or str(error), sqlstate=sqlstate,
               detail=diag.message_detail, hint=diag.message_hint)
