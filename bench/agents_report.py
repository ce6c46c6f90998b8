"""The ``agents`` scenario's markdown tables: added latency, errors, calls/s, CPU per call per
process, Temporal's work per call, the load generator's own check, and the issue's targets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bench.histories import KeyTally, Tally
from bench.report import errors, p, spread, table

if TYPE_CHECKING:
    from bench.agents import Cell, Measured

DIRECT, RUNCAP, LITELLM = "direct", "runcap", "LiteLLM"
GATEWAYS = (RUNCAP, LITELLM)
PROCESSES = ("temporal", "postgres", "worker", "api", "litellm", "fake", "load")
OWN = {DIRECT: (), RUNCAP: ("temporal", "postgres", "worker", "api"), LITELLM: ("litellm",)}
"""PostgreSQL (the production topology's; the dev stack has none) holds Temporal's history and
runcap's ledger: runcap's cost, as the dev server's in-process store is."""
GENERATOR_SLACK = 1.05
"""The direct target's p99 must stay within 5% of L, or the generator is what is measured."""


def latencies(blocks: Sequence[Measured]) -> list[float]:
    return [x for b in blocks for x in b.outcome.latencies]


def calls(blocks: Sequence[Measured]) -> int:
    return sum(b.outcome.calls for b in blocks)


def error_counts(blocks: Sequence[Measured]) -> Counter[str]:
    total: Counter[str] = Counter()
    for b in blocks:
        total.update(b.outcome.errors)
    return total


def added(cell: Cell, name: str, q: int) -> float:
    """Pooled over the rounds: the target's ``q``th percentile minus direct's."""
    return p(latencies(cell.rounds[name]), q) - p(latencies(cell.rounds[DIRECT]), q)


def added_per_round(cell: Cell, name: str, q: int) -> list[float]:
    return [
        p(m.outcome.latencies, q) - p(d.outcome.latencies, q)
        for m, d in zip(cell.rounds[name], cell.rounds[DIRECT], strict=True)
    ]


def cpu_ms(blocks: Sequence[Measured], process: str) -> float:
    """CPU ms per call; ``load`` is the generator: its processes and the coordinator."""
    total = 0.0
    for b in blocks:
        if process == "load":
            total += sum(s for name, s in b.cpu.items() if name == "bench" or "load-" in name)
        else:
            total += b.cpu.get(process, 0.0)
    return total * 1000 / max(calls(blocks), 1)


def latency_table(cells: Sequence[Cell]) -> str:
    header = ["agents", "target", "p50 ms", "p99 ms", "added p50", "added p99"]
    header += ["added p50 per round", "added p99 per round", "errors", "calls", "calls/s"]
    rows = []
    for cell in cells:
        for name, blocks in cell.rounds.items():
            mine = latencies(blocks)
            row = [str(cell.shape.agents), name, f"{p(mine, 50):.1f}", f"{p(mine, 99):.1f}"]
            if name == DIRECT:
                row += ["", "", "", ""]
            else:
                row += [f"{added(cell, name, 50):.1f}", f"{added(cell, name, 99):.1f}"]
                row += [spread(added_per_round(cell, name, q), "{:.1f}") for q in (50, 99)]
            rate = len(mine) / sum(b.seconds for b in blocks)
            row += [errors(error_counts(blocks)), str(calls(blocks)), f"{rate:.1f}"]
            rows.append(row)
    return table(header, rows)


def warmup_table(cells: Sequence[Cell]) -> str:
    header = ["agents", "target", "calls", "errors", "p50 ms", "p99 ms", "added p50", "added p99"]
    rows = []
    for cell in cells:
        direct = cell.warmup[DIRECT].outcome.latencies
        for name, block in cell.warmup.items():
            mine = block.outcome.latencies
            row = [str(cell.shape.agents), name, str(block.outcome.calls)]
            row += [
                errors(Counter(block.outcome.errors)),
                f"{p(mine, 50):.1f}",
                f"{p(mine, 99):.1f}",
            ]
            if name == DIRECT:
                row += ["", ""]
            else:
                row += [f"{p(mine, q) - p(direct, q):.1f}" for q in (50, 99)]
            rows.append(row)
    return table(header, rows)


def cpu_table(cells: Sequence[Cell]) -> str:
    measured = {proc for cell in cells for b in cell.rounds[DIRECT] for proc in b.cpu}
    shown = [proc for proc in PROCESSES if proc == "load" or proc in measured]
    header = ["agents", "calls to", *shown, "gateway's own", "own over background"]
    rows = []
    for cell in cells:
        background = {proc: cpu_ms(cell.rounds[DIRECT], proc) for proc in shown}
        for name, blocks in cell.rounds.items():
            figures = {proc: cpu_ms(blocks, proc) for proc in shown}
            own = sum(figures.get(proc, 0.0) for proc in OWN[name])
            over = own - sum(background.get(proc, 0.0) for proc in OWN[name])
            cells_ = [f"{figures[proc]:.2f}" for proc in shown]
            mine = [f"{own:.2f}", f"{over:.2f}"] if OWN[name] else ["", ""]
            rows.append([str(cell.shape.agents), name, *cells_, *mine])
    return table(header, rows)


def temporal_table(cells: Sequence[Cell]) -> str:
    header = ["agents", "keeper", "executions", "updates/call", "workflow tasks/call"]
    header += ["events/call", "updates/call per round", "tasks/call per round"]
    rows = []
    for cell in cells:
        blocks = cell.rounds[RUNCAP]
        made = calls(blocks)
        keepers: list[tuple[str, Callable[[Measured], Tally]]] = [
            ("runs (AgentRun)", lambda b: _tally(b).runs),
            ("day period (KeyBudget)", lambda b: _tally(b).periods),
            ("both", lambda b: _tally(b).runs + _tally(b).periods),
        ]
        for label, pick in keepers:
            total = Tally()
            for b in blocks:
                total += pick(b)
            per_round = [(pick(b), b.outcome.calls) for b in blocks]
            runs = _tally(blocks[-1]).open_runs if label.startswith("runs") else None
            executions = f"{runs} open" if runs is not None else ""
            rows.append(
                [
                    str(cell.shape.agents),
                    label,
                    executions,
                    f"{total.updates / made:.3f}",
                    f"{total.tasks / made:.3f}",
                    f"{total.events / made:.2f}",
                    spread([t.updates / max(c, 1) for t, c in per_round], "{:.3f}"),
                    spread([t.tasks / max(c, 1) for t, c in per_round], "{:.3f}"),
                ]
            )
    return table(header, rows)


def _tally(block: Measured) -> KeyTally:
    assert block.temporal is not None
    return block.temporal


def idle_table(cells: Sequence[Cell]) -> str:
    """What the lines cost while nobody calls: per keeper and minute, between runcap's rounds."""
    header = ["agents", "keeper", "idle s per gap", "updates/keeper/min", "tasks/keeper/min"]
    header += ["events/keeper/min"]
    rows = []
    for cell in cells:
        blocks = cell.rounds[RUNCAP]
        minutes = sum(b.idle_seconds for b in blocks) / 60
        gaps = spread([b.idle_seconds for b in blocks])
        for label, runs in (("runs (AgentRun), each", True), ("day period (KeyBudget)", False)):
            total = Tally()
            for b in blocks:
                assert b.idle is not None
                total += b.idle.runs if runs else b.idle.periods
            keepers = _tally(blocks[-1]).open_runs if runs else 1
            per = keepers * minutes
            rows.append(
                [str(cell.shape.agents), label, gaps]
                + [f"{v / per:.2f}" for v in (total.updates, total.tasks, total.events)]
            )
    return table(header, rows)


def generator_table(cells: Sequence[Cell]) -> str:
    header = ["agents", "load processes", "L ms", "direct p50 ms", "direct p99 ms", "p99 / L"]
    header += ["goal", "met", "generator CPU ms/call"]
    rows = []
    for cell in cells:
        direct = latencies(cell.rounds[DIRECT])
        ratio = p(direct, 99) / (cell.shape.latency * 1000)
        rows.append(
            [
                str(cell.shape.agents),
                str(cell.processes),
                f"{cell.shape.latency * 1000:.0f}",
                f"{p(direct, 50):.1f}",
                f"{p(direct, 99):.1f}",
                f"{ratio:.3f}",
                f"<= {GENERATOR_SLACK:.2f}",
                "yes" if ratio <= GENERATOR_SLACK else "no",
                f"{cpu_ms(cell.rounds[DIRECT], 'load'):.2f}",
            ]
        )
    return table(header, rows)


def goals_table(cells: Sequence[Cell]) -> str:
    header = ["agents", "target (issue 14)", "measured", "per round", "goal", "met"]
    rows = []
    for cell in cells:
        n = str(cell.shape.agents)
        for q, limit in ((50, 5.0), (99, 30.0)):
            value = added(cell, RUNCAP, q)
            per_round = spread(added_per_round(cell, RUNCAP, q), "{:.1f}")
            met = "yes" if value <= limit else "no"
            rows.append(
                [n, f"runcap added p{q}, ms", f"{value:.1f}", per_round, f"<= {limit:.0f}", met]
            )
        failed = sum(error_counts(cell.rounds[RUNCAP]).values())
        rows.append([n, "runcap errors", str(failed), "", "0", "yes" if not failed else "no"])
        ratio = added(cell, RUNCAP, 50) / added(cell, LITELLM, 50)
        ratios = [
            a / b
            for a, b in zip(
                added_per_round(cell, RUNCAP, 50), added_per_round(cell, LITELLM, 50), strict=True
            )
        ]
        rows.append(
            [
                n,
                "runcap added p50 / LiteLLM added p50",
                f"{ratio:.2f}x",
                spread(ratios, "{:.2f}"),
                "<= 0.25x",
                "yes" if ratio <= 0.25 else "no",
            ]
        )
    return table(header, rows)


def print_all(
    cells: Sequence[Cell], load_before: tuple[float, ...], load_after: tuple[float, ...], cores: int
) -> None:
    if not cells:
        return
    shape = cells[0].shape
    print(
        f"\n## Agents: each its own run, provider {shape.latency * 1000:.0f} ms, think"
        f" {shape.think * 1000:.0f} ms; {shape.rounds} rounds of {shape.seconds:.0f} s per target"
    )
    print(
        f"\nMachine: {cores} cores; load average (1 min) {load_before[0]:.1f} at the start,"
        f" {load_after[0]:.1f} at the end (other work on the machine counts in it)."
    )
    print("\n### Latency: added over direct (pooled over the rounds; per-round range)\n")
    print(latency_table(cells))
    print("\n### CPU ms per call, per process, during each target's rounds (and their tails)\n")
    print(
        "Direct's row is the background: the idle processes, and runcap's idle lines while the"
        " other targets run; 'own over background' takes it off.\n"
    )
    print(cpu_table(cells))
    print("\n### runcap's Temporal work per call, in its rounds and their tails\n")
    print("From the key's keepers' histories, counted before and after each runcap round.\n")
    print(temporal_table(cells))
    print("\n### runcap's Temporal work between its rounds (its lines idle, nobody calls)\n")
    print(idle_table(cells))
    print("\n### The load generator (is it the bottleneck?)\n")
    print(generator_table(cells))
    print("\n### Warm-up round (not in the figures above: new runs, new lines, new connections)\n")
    print(warmup_table(cells))
    print("\n### The issue's targets\n")
    print(goals_table(cells))
