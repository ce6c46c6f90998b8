"""The one polling helper of the tests: await a condition instead of sleeping a fixed time."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any


async def eventually(check: Any, within: float = 15.0, every: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy (or ``within`` seconds pass); return it."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = check()
        if inspect.isawaitable(value):  # an async function, or a lambda calling one
            value = await value
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(every)
