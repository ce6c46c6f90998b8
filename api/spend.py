"""Admin spend queries over the ledger: totals grouped by key, run, task, step, agent, model,
provider, day or any tag prefix, the same as a series of hourly or daily buckets, and its CSV.

Why SQL aggregation over the ledger: the ledger is the source of every spend figure, and sums
of integer micro-dollars in the database are exact; USD strings are made only at the edge.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from sqlalchemy import ColumnElement, Connection, FromClause, and_, case, exists, func, select
from sqlalchemy import literal_column as lc

from api.auth import require_admin
from api.deps import EngineDep
from api.errors import BadRequest
from api.tags import validate_tag
from db.models import LedgerEntry, LedgerTag
from workflows.budget import NO_STEP
from workflows.money import micros_to_usd

router = APIRouter(prefix="/admin", tags=["spend"], dependencies=[Depends(require_admin)])
L = LedgerEntry.__table__  # type: ignore[attr-defined]
T = LedgerTag.__table__  # type: ignore[attr-defined]
PLAIN_GROUPS = {"key": L.c.key_id, "run": L.c.run_id, "model": L.c.model, "provider": L.c.provider}
TAG_GROUPS = ("task", "step", "agent")
"""Short names of the tag prefixes runcap understands: ``step`` is ``tag:step``."""
GROUPS_HELP = "key, run, task, step, agent, model, provider, day or tag:PREFIX"
Bucket = Literal["hour", "day"]
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.@+\-/]{1,64}")
TagsQuery = Annotated[list[str] | None, Query(alias="tag")]
CSV_FIELDS = ("bucket", "group", "calls", "cost_usd", "input_tokens", "output_tokens")


def utc(when: datetime | None) -> datetime | None:
    """``when`` as aware UTC; a naive time (SQLite hands those back) is UTC already."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def filters(
    tags: list[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    run_id: str | Sequence[str] | None = None,
    key_id: str | None = None,
) -> list[ColumnElement[bool]]:
    """Ledger conditions: every tag present (AND), ``since <= started_at < until``, one run or
    any of several (a run's tree)."""
    conds: list[ColumnElement[bool]] = []
    for tag in tags or []:
        validate_tag(tag)
        conds.append(exists().where(T.c.call_id == L.c.call_id, T.c.tag == tag))
    if (start := utc(since)) is not None:
        conds.append(L.c.started_at >= start)
    if (end := utc(until)) is not None:
        conds.append(L.c.started_at < end)
    if isinstance(run_id, str):
        conds.append(L.c.run_id == run_id)
    elif run_id is not None:
        conds.append(L.c.run_id.in_(list(run_id)))
    if key_id is not None:
        conds.append(L.c.key_id == key_id)
    return conds


def time_bucket(bucket: Bucket, dialect: str) -> ColumnElement[Any]:
    """The UTC hour (``YYYY-MM-DD HH``) or day (``YYYY-MM-DD``) a call started in, as text."""
    if dialect == "postgresql":
        pattern = "YYYY-MM-DD HH24" if bucket == "hour" else "YYYY-MM-DD"
        return func.to_char(func.timezone("UTC", L.c.started_at), pattern)
    # SQLite stores UTC times as ISO text: the bucket is a prefix of it.
    return func.substr(L.c.started_at, 1, 13 if bucket == "hour" else 10)


def bucket_start(text: str) -> datetime:
    """The start of a bucket from its ``time_bucket`` text."""
    if len(text) == 13:
        return datetime.fromisoformat(f"{text[:10]}T{text[11:]}:00:00+00:00")
    return datetime.fromisoformat(f"{text}T00:00:00+00:00")


def _group(group_by: str, dialect: str) -> tuple[ColumnElement[Any], FromClause]:
    if group_by in PLAIN_GROUPS:
        return PLAIN_GROUPS[group_by], L
    if group_by == "day":
        return time_bucket("day", dialect), L
    prefix = group_by if group_by in TAG_GROUPS else group_by.removeprefix("tag:")
    if (group_by in TAG_GROUPS or group_by.startswith("tag:")) and _PREFIX_RE.fullmatch(prefix):
        g = T.alias("g")
        joined = L.outerjoin(g, and_(g.c.call_id == L.c.call_id, g.c.prefix == prefix))
        return func.coalesce(g.c.tag, NO_STEP), joined
    raise BadRequest(f"group_by must be {GROUPS_HELP}, not {group_by!r}", param="group_by")


def _sums() -> list[ColumnElement[Any]]:
    failed = L.c.status == "failed"
    return [
        func.coalesce(func.sum(case((failed, 0), else_=1)), 0).label("calls"),
        func.coalesce(func.sum(case((failed, 1), else_=0)), 0),
        func.coalesce(func.sum(L.c.cost_micros), 0),
        func.coalesce(func.sum(L.c.input_tokens), 0),
        func.coalesce(func.sum(L.c.output_tokens), 0),
        func.coalesce(func.sum(L.c.cached_input_tokens), 0),
        func.coalesce(func.sum(L.c.cache_write_tokens), 0),
    ]


def _figures(
    calls: Any, failed: Any, cost: Any, inp: Any, out: Any, cached: Any, written: Any
) -> dict[str, Any]:
    """Billed calls and failed ones apart: a failed call costs nothing and served no model."""
    return {
        "calls": int(calls),
        "failed_calls": int(failed),
        "cost_usd": micros_to_usd(int(cost)),
        "cost_micros": int(cost),
        "input_tokens": int(inp),
        "output_tokens": int(out),
        "cached_input_tokens": int(cached),
        "cache_write_tokens": int(written),
    }


def aggregate(
    conn: Connection, group_by: str, conds: list[ColumnElement[bool]]
) -> list[dict[str, Any]]:
    """Spend rows grouped by ``group_by``, dearest first, money in USD strings."""
    group, source = _group(group_by, conn.dialect.name)
    stmt = (
        select(group.label("grp"), *_sums())
        .select_from(source)
        .where(*conds)
        .group_by(lc("grp"))
        .order_by(lc("4").desc(), lc("grp"))
    )
    return [{"group": str(grp), **_figures(*sums)} for grp, *sums in conn.execute(stmt)]


def series(
    conn: Connection, bucket: Bucket, group_by: str, conds: list[ColumnElement[bool]]
) -> list[dict[str, Any]]:
    """Spend per time bucket and group, oldest bucket first (long format: one row per pair)."""
    group, source = _group(group_by, conn.dialect.name)
    when = time_bucket(bucket, conn.dialect.name)
    stmt = (
        select(when.label("bkt"), group.label("grp"), *_sums())
        .select_from(source)
        .where(*conds)
        .group_by(lc("bkt"), lc("grp"))
        .order_by(lc("bkt"), lc("grp"))
    )
    return [
        {"bucket": bucket_start(str(bkt)).isoformat(), "group": str(grp), **_figures(*sums)}
        for bkt, grp, *sums in conn.execute(stmt)
    ]


def totals(conn: Connection, conds: list[ColumnElement[bool]]) -> tuple[int, int, int]:
    """(billed calls, cost micros, failed calls) of the filtered ledger."""
    calls, failed, cost, *_ = conn.execute(select(*_sums()).where(*conds)).one()
    return int(calls), int(cost), int(failed)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Series rows as CSV with a header line; money as exact USD strings."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@router.get("/spend")
def spend(
    engine: EngineDep,
    group_by: str = "key",
    tag: TagsQuery = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Spend grouped as asked; ``tag`` may repeat (calls carrying all of them)."""
    conds = filters(tag, since, until)
    # A failed call served no model or provider: it is counted in ``failed_calls``, not as a
    # model named "".
    served = [L.c.status != "failed"] if group_by in ("model", "provider") else []
    with engine.connect() as conn:
        rows = aggregate(conn, group_by, [*conds, *served])
        calls, cost, failed = totals(conn, conds)
    return {
        "group_by": group_by,
        "rows": rows,
        "total_calls": calls,
        "total_cost_usd": micros_to_usd(cost),
        "failed_calls": failed,
    }


@router.get("/spend/series")
def spend_series(
    engine: EngineDep,
    bucket: Bucket = "hour",
    group_by: str = "key",
    tag: TagsQuery = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """Cost and calls per UTC hour or day and group, for charts."""
    conds = filters(tag, since, until)
    with engine.connect() as conn:
        rows = series(conn, bucket, group_by, conds)
    return {"bucket": bucket, "group_by": group_by, "rows": rows}


@router.get(
    "/spend/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def spend_csv(
    engine: EngineDep,
    bucket: Bucket = "day",
    group_by: str = "key",
    tag: TagsQuery = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Response:
    """The series as a CSV download (one line per bucket and group)."""
    conds = filters(tag, since, until)
    with engine.connect() as conn:
        rows = series(conn, bucket, group_by, conds)
    return csv_response(rows)


def csv_response(rows: list[dict[str, Any]]) -> Response:
    """A CSV attachment named ``runcap-spend.csv``."""
    return Response(
        csv_text(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="runcap-spend.csv"'},
    )
