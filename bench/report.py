"""The comparison's markdown tables: added latency, calls/s, CPU per call, the issue's targets."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bench.load import Block, Blocks

PROCESSES = ("temporal", "worker", "api", "litellm", "fake", "bench")
Cells = Mapping[tuple[int, int], Mapping[str, Blocks]]
DIRECT, RUNCAP, LITELLM = "direct", "runcap", "LiteLLM"


@dataclass
class BurstRow:
    label: str
    latency_ms: int
    block: Block


def p(samples: Sequence[float], q: int) -> float:
    """The ``q``th percentile in milliseconds (nan without samples)."""
    if len(samples) < 2:
        return samples[0] * 1000 if samples else float("nan")
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000


def errors(counts: Counter[str]) -> str:
    return ", ".join(f"{n}x {kind}" for kind, n in counts.most_common()) or "0"


def spread(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def added_per_round(cell: Mapping[str, Blocks], gateway: str, q: int) -> list[float]:
    return [
        p(g.latencies, q) - p(d.latencies, q)
        for g, d in zip(cell[gateway].runs, cell[DIRECT].runs, strict=True)
    ]


def latency_table(cells: Cells, gateways: Sequence[str]) -> str:
    header = ["provider ms", "conc", "direct p50", "direct p95"]
    for g in gateways:
        header += [f"{g} added p50", f"{g} added p95"]
    rows = []
    for (latency, conc), cell in cells.items():
        direct = cell[DIRECT].latencies
        row = [str(latency), str(conc), f"{p(direct, 50):.1f}", f"{p(direct, 95):.1f}"]
        for g in gateways:
            mine = cell[g].latencies
            row += [f"{p(mine, 50) - p(direct, 50):.1f}", f"{p(mine, 95) - p(direct, 95):.1f}"]
        rows.append(row)
    return table(header, rows)


def throughput_table(cells: Cells, gateways: Sequence[str]) -> str:
    header = ["provider ms", "conc", "direct", *gateways, "runcap / LiteLLM", "errors"]
    rows = []
    for (latency, conc), cell in cells.items():
        row = [str(latency), str(conc)]
        for name in (DIRECT, *gateways):
            blocks = cell[name]
            row.append(f"{blocks.rate:.0f} ({spread([b.rate for b in blocks.runs])})")
        row.append(f"{cell[RUNCAP].rate / cell[LITELLM].rate:.2f}x")
        row.append("; ".join(f"{g}: {errors(cell[g].errors)}" for g in gateways))
        rows.append(row)
    return table(header, rows)


def cpu_table(cells: Cells, own: Mapping[str, Sequence[str]]) -> str:
    extra = [proc for procs in own.values() for proc in procs if proc not in PROCESSES]
    processes = [*PROCESSES, *dict.fromkeys(extra)]
    header = ["provider ms", "conc", "calls to", *processes, "gateway's own"]
    rows = []
    for (latency, conc), cell in cells.items():
        for name, blocks in cell.items():
            figures = {proc: blocks.cpu_ms_per_call(proc) for proc in processes}
            mine = sum(figures[proc] for proc in own.get(name, ()))
            cells_ = [f"{figures[proc]:.2f}" for proc in processes]
            rows.append([str(latency), str(conc), name, *cells_, f"{mine:.2f}"])
    return table(header, rows)


@dataclass
class Goal:
    label: str
    latency_ms: int
    pooled: float
    rounds: list[float]
    goal: str
    met: Callable[[float], bool]


def goals(cells: Cells) -> list[Goal]:
    """Issue 14's targets for one hot run."""
    found = []
    for (latency, conc), cell in cells.items():
        if conc == 1:
            ours, theirs = cell[RUNCAP].latencies, cell[LITELLM].latencies
            direct = p(cell[DIRECT].latencies, 50)
            pooled = (p(ours, 50) - direct) / (p(theirs, 50) - direct)
            per_round = [
                a / b
                for a, b in zip(
                    added_per_round(cell, RUNCAP, 50),
                    added_per_round(cell, LITELLM, 50),
                    strict=True,
                )
            ]
            label = "added p50 at concurrency 1, runcap / LiteLLM"
            found.append(Goal(label, latency, pooled, per_round, "<= 0.5x", lambda v: v <= 0.5))
        elif latency > 0:
            pooled = cell[RUNCAP].rate / cell[DIRECT].rate
            per_round = [
                a.rate / b.rate for a, b in zip(cell[RUNCAP].runs, cell[DIRECT].runs, strict=True)
            ]
            label = f"calls/s at concurrency {conc}, runcap / direct"
            found.append(Goal(label, latency, pooled, per_round, ">= 0.95x", lambda v: v >= 0.95))
        hot = cell[RUNCAP]
        pooled = p(hot.latencies, 95) / p(hot.latencies, 50)
        per_round = [p(b.latencies, 95) / p(b.latencies, 50) for b in hot.runs]
        label = f"runcap p95 / p50 at concurrency {conc}"
        found.append(Goal(label, latency, pooled, per_round, "<= 3x", lambda v: v <= 3.0))
    return found


def goals_table(cells: Cells, bursts: Sequence[BurstRow]) -> str:
    rows = [
        [
            g.label,
            str(g.latency_ms),
            f"{g.pooled:.2f}x",
            spread(g.rounds, "{:.2f}"),
            g.goal,
            "yes" if g.met(g.pooled) else "no",
        ]
        for g in goals(cells)
    ]
    for b in bursts:
        if b.label.startswith("runcap"):
            failed = sum(b.block.errors.values())
            label = (
                f"{b.block.calls} concurrent calls on one run ({b.label.split(', ')[1]}), errors"
            )
            rows.append(
                [label, str(b.latency_ms), str(failed), "", "0", "yes" if not failed else "no"]
            )
    header = ["target", "provider ms", "measured (pooled)", "per round", "goal", "met"]
    return table(header, rows)


def burst_table(bursts: Sequence[BurstRow]) -> str:
    header = ["provider ms", "gateway", "calls", "ok", "errors", "seconds", "p50 ms", "p95 ms"]
    rows = [
        [
            str(b.latency_ms),
            b.label,
            str(b.block.calls),
            str(len(b.block.latencies)),
            errors(b.block.errors),
            f"{b.block.wall:.2f}",
            f"{p(b.block.latencies, 50):.0f}",
            f"{p(b.block.latencies, 95):.0f}",
        ]
        for b in bursts
    ]
    return table(header, rows)


def comparison(
    cells: Cells,
    rounds: int,
    bursts: Sequence[BurstRow],
    gateways: Sequence[str],
    own: dict[str, tuple[str, ...]],
) -> None:
    """``own``: each gateway's processes (their CPU is its cost)."""
    print(f"\n### Added latency, ms (gateway minus direct, pooled over {rounds} rounds)\n")
    print(latency_table(cells, gateways))
    print("\n### Calls/s (all rounds; per-round range in brackets)\n")
    print(throughput_table(cells, gateways))
    print("\n### CPU ms per call, per process, during each target's blocks\n")
    print(cpu_table(cells, own))
    print("\n### Bursts of concurrent calls on one run\n")
    print(burst_table(bursts))
    print("\n### The issue's targets\n")
    print(goals_table(cells, bursts))
