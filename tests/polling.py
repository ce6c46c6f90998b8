"""One way for tests to wait: poll a condition, never sleep a fixed time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(check: Callable[[], Awaitable[T]], within: float = ...) -> T: ...


@overload
async def eventually(check: Callable[[], T], within: float = ...) -> T: ...


async def eventually(check: Callable[[], Any], within: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy, or return its last value at the end."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value or loop.time() > deadline:
            return value
        await asyncio.sleep(0.1)
