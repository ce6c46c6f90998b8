"""The call engine outside workflows: hold against lines, walk the chain here, report in batches."""

from caller.call import CallReply, CallStream
from caller.caller import Caller, CallSpec
from caller.errors import CallFailed
from caller.keepers import run_handle
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
