"""The spend explorer: cost and calls over time, grouped and filtered, as a chart, a table and
a CSV download. The queries are the admin api's own (``api.spend``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.deps import EngineDep
from api.errors import GatewayError
from api.spend import Bucket, aggregate, csv_response, filters, series, totals
from api.ui.guard import SignedInDep
from api.ui.render import page
from db.models import VirtualKey, utcnow
from workflows.contracts import MICROS_PER_USD

router = APIRouter()
GROUPS = ("key", "task", "step", "agent", "model", "provider")
RANGES = {"1h": 1, "6h": 6, "24h": 24, "7d": 7 * 24, "30d": 30 * 24, "all": 0}
CHART_GROUPS = 8
"""Lines drawn; the other groups are summed into one "(other)" line."""
MAX_BUCKETS = 2000


@dataclass(frozen=True)
class SpendQuery:
    """The explorer's filters, read leniently from the query string (bad values fall back)."""

    group: str = "step"
    range: str = "24h"
    bucket: Bucket = "hour"
    tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, params: Any) -> SpendQuery:
        group = params.get("group", "step")
        span = params.get("range", "24h")
        span = span if span in RANGES else "24h"
        bucket = params.get("bucket", "auto")
        if bucket not in ("hour", "day"):
            bucket = "hour" if 0 < RANGES[span] <= 48 else "day"
        tags = tuple(t for t in params.get("tag", "").replace(",", " ").split() if t)
        return cls(group if group in GROUPS else "step", span, bucket, tags)

    @property
    def since(self) -> datetime | None:
        hours = RANGES[self.range]
        return utcnow() - timedelta(hours=hours) if hours else None


def floor(moment: datetime, bucket: Bucket) -> datetime:
    """The start of the UTC hour or day holding ``moment``."""
    start = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if bucket == "day" else start


def timeline(
    points: list[dict[str, Any]], bucket: Bucket, since: datetime | None, now: datetime
) -> list[datetime]:
    """Every bucket from the window's start (else the first point) to now, so empty hours show
    as zero rather than the line jumping over them; only the points' own when too many."""
    seen = sorted({datetime.fromisoformat(p["bucket"]) for p in points})
    if not seen:
        return []
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    start, end = floor(since, bucket) if since else seen[0], max(floor(now, bucket), seen[-1])
    if (end - start) / step > MAX_BUCKETS:
        return seen
    return [start + i * step for i in range(int((end - start) / step) + 1)]


def chart_data(
    points: list[dict[str, Any]], bucket: Bucket, since: datetime | None, now: datetime
) -> dict[str, Any]:
    """uPlot's columns: bucket times (epoch seconds), then cost per group in USD, then calls.

    The only floats in the dashboard: the chart's y values.
    """
    buckets = timeline(points, bucket, since, now)
    index = {b: i for i, b in enumerate(buckets)}
    cost: dict[str, list[int]] = {}
    calls = [0] * len(buckets)
    for point in points:
        i = index[datetime.fromisoformat(point["bucket"])]
        cost.setdefault(point["group"], [0] * len(buckets))[i] += point["cost_micros"]
        calls[i] += point["calls"]
    ranked = sorted(cost, key=lambda g: -sum(cost[g]))
    shown = {g: cost[g] for g in ranked[:CHART_GROUPS]}
    if len(ranked) > CHART_GROUPS:
        rest = ranked[CHART_GROUPS:]
        shown["(other)"] = [sum(cost[g][i] for g in rest) for i in range(len(buckets))]
    return {
        "bucket": bucket,
        "x": [int(b.timestamp()) for b in buckets],
        "series": [
            {"label": g, "values": [v / MICROS_PER_USD for v in values]}
            for g, values in shown.items()
        ],
        "calls": calls,
    }


def explore(engine: Engine, query: SpendQuery) -> dict[str, Any]:
    """The explorer's figures: totals per group, the series, the grand totals."""
    conds = filters(list(query.tags), query.since)
    with engine.connect() as conn:
        groups = aggregate(conn, query.group, conds)
        points = series(conn, query.bucket, query.group, conds)
        calls, cost, _ = totals(conn, conds)
    return {"groups": groups, "points": points, "calls": calls, "cost": cost}


def key_labels(engine: Engine) -> dict[str, str]:
    """``name (key_id)`` per key id: grouping by key shows who, not only an id."""
    with Session(engine) as session:
        return {k.id: f"{k.name} ({k.id})" for k in session.exec(select(VirtualKey))}


@router.get("/spend")
def spend_page(request: Request, engine: EngineDep, session: SignedInDep) -> Response:
    """Cost and calls over time, grouped and filtered as the form says."""
    query = SpendQuery.of(request.query_params)
    error = None
    try:
        found = explore(engine, query)
    except GatewayError as err:  # a malformed tag filter
        error, found = err.message, {"groups": [], "points": [], "calls": 0, "cost": 0}
    if query.group == "key":
        labels = key_labels(engine)
        for row in [*found["groups"], *found["points"]]:
            row["group"] = labels.get(row["group"], row["group"])
    context = {
        "nav": "spend",
        "q": query,
        "group_names": GROUPS,
        "ranges": RANGES,
        "error": error,
        "chart": chart_data(found["points"], query.bucket, query.since, utcnow()),
        "csv_query": request.url.query,
        **found,
    }
    return page(request, "spend.html", context, session=session)


@router.get("/spend.csv")
def spend_csv(request: Request, engine: EngineDep, session: SignedInDep) -> Response:
    """The explorer's series as CSV, with the page's filters."""
    query = SpendQuery.of(request.query_params)
    conds = filters(list(query.tags), query.since)
    with engine.connect() as conn:
        return csv_response(series(conn, query.bucket, query.group, conds))
