"""Translation between the three wire formats, through the internal form.

A fallback chain may cross formats, so a call written in any format must be answerable by a
target of any other: each format is read into ``providers.formats.hub`` and written from it.
Same-format bodies never come here; the adapters forward them nearly untouched. Streams map in
``providers.streams``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from providers.formats import chat, compaction, messages, responses
from providers.formats.hub import JSON, Meter, Reply, Request, Untranslatable
from workflows.contracts import Usage, WireFormat

__all__ = [
    "FORMATS",
    "Untranslatable",
    "compacting",
    "pass_through",
    "strip_runcap_metadata",
    "translate_reply",
    "translate_request",
    "usage_of",
]


@dataclass(frozen=True)
class Format:
    read_request: Callable[[JSON], Request]
    write_request: Callable[[Request], JSON]
    read_reply: Callable[[JSON], Reply]
    write_reply: Callable[[Reply], JSON]
    read_usage: Callable[[Any], Meter]
    body_usage: Callable[[JSON], Usage]


FORMATS: dict[WireFormat, Format] = {
    "openai": Format(
        chat.read_request,
        chat.write_request,
        chat.read_reply,
        chat.write_reply,
        chat.read_usage,
        chat.body_usage,
    ),
    "anthropic": Format(
        messages.read_request,
        messages.write_request,
        messages.read_reply,
        messages.write_reply,
        messages.read_usage,
        messages.body_usage,
    ),
    "responses": Format(
        responses.read_request,
        responses.write_request,
        responses.read_reply,
        responses.write_reply,
        responses.read_usage,
        responses.body_usage,
    ),
}


def translate_request(body: JSON, source: WireFormat, target: WireFormat) -> JSON:
    """A ``source`` request as a ``target`` request; ``Untranslatable`` when it cannot be."""
    return FORMATS[target].write_request(FORMATS[source].read_request(body))


def translate_reply(
    body: JSON, source: WireFormat, target: WireFormat, *, compaction: bool = False
) -> JSON:
    """A ``source`` answer as a ``target`` answer; for a compaction request (see
    ``compacting``), a Responses answer holding the model's text as one compaction item."""
    reply = FORMATS[source].read_reply(body)
    if compaction and target == "responses":
        return responses.write_compaction(reply)
    return FORMATS[target].write_reply(reply)


def compacting(body: JSON, source: WireFormat, target: WireFormat) -> bool:
    """A Responses caller's compaction that a ``target`` of another format serves by writing a
    summary, which runcap carries in the compaction item (a Responses target compacts itself)."""
    return source == "responses" and target != "responses" and compaction.requested(body)


def pass_through(body: JSON, fmt: WireFormat) -> JSON:
    """A body for a target of its own format: as sent, except that compaction items runcap wrote
    become the turns they stand for (only runcap can read them)."""
    return compaction.for_responses_target(body) if fmt == "responses" else dict(body)


def usage_of(body: JSON, fmt: WireFormat) -> Usage:
    """The usage of a whole answer in ``fmt``, normalised as runcap bills it."""
    return FORMATS[fmt].body_usage(body)


def strip_runcap_metadata(body: JSON) -> None:
    """runcap's own ``metadata.tags`` are for attribution, never for the provider."""
    meta = body.get("metadata")
    if isinstance(meta, dict) and "tags" in meta:
        rest = {k: v for k, v in meta.items() if k != "tags"}
        if rest:
            body["metadata"] = rest
        else:
            del body["metadata"]
