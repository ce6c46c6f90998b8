"""``CallFailed``: how the caller reports a failed call, and how it reads the run's refusals."""

from __future__ import annotations

from typing import Any

from temporalio.client import WorkflowUpdateFailedError
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError

from workflows import errors
from workflows.errors import Failure


class CallFailed(Exception):
    """A call that did not succeed; ``failure.kind`` is one of ``workflows.errors``."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure

    @property
    def kind(self) -> str:
        return self.failure.kind

    @property
    def message(self) -> str:
        return self.failure.message

    @classmethod
    def of(cls, kind: str, message: str, **fields: Any) -> CallFailed:
        return cls(Failure(kind, message, **fields))


def failure_of(error: ApplicationError) -> Failure:
    """The ``Failure`` a workflow attached to ``error`` (its only detail), else one from its
    type and message."""
    if error.details and isinstance(error.details[0], dict):
        try:
            failure: Failure = value_to_type(Failure, error.details[0], [])
            return failure
        except (TypeError, ValueError):
            pass
    return Failure(error.type or errors.ALL_TARGETS_FAILED, error.message)


def update_failure(err: WorkflowUpdateFailedError) -> CallFailed:
    """The refusal inside a failed update, as ``CallFailed``."""
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__
    if isinstance(cause, ApplicationError):
        return CallFailed(failure_of(cause))
    return CallFailed.of(errors.ALL_TARGETS_FAILED, str(err.cause or err))
