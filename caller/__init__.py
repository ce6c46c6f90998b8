"""The call engine outside workflows: reserve in the run, walk the chain here, settle in batches."""

from caller.call import CallReply, CallStream
from caller.caller import Caller, CallSpec
from caller.errors import CallFailed
from caller.runs import run_handle
from caller.walk import WalkPolicy

__all__ = [
    "CallFailed",
    "CallReply",
    "CallSpec",
    "CallStream",
    "Caller",
    "WalkPolicy",
    "run_handle",
]
