"""CPU time of the stack's processes, read from ``/proc``: what each part spends per call.

A process's figure is user + system time of it and of its descendants that are not measured
under a name of their own (a server that forks workers is counted whole; the benchmark itself
is counted without the stack it started). The kernel counts in clock ticks (10 ms on Linux),
so a block should last a few seconds for its per-call figure to mean anything.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))


def _own_seconds(pid: int) -> float:
    """User + system seconds of one process (all its threads); 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def tree_seconds(pid: int, apart: frozenset[int] = frozenset()) -> float:
    """CPU seconds of ``pid`` and its live descendants, but not of those in ``apart``."""
    total, todo, seen = 0.0, [pid], set(apart)
    while todo:
        current = todo.pop()
        if current in seen and current != pid:
            continue
        seen.add(current)
        total += _own_seconds(current)
        todo += _children(current)
    return total


def snapshot(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds so far of each named process (with its unnamed descendants)."""
    named = frozenset(pids.values())
    return {name: tree_seconds(pid, named) for name, pid in pids.items()}


def spent(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}
