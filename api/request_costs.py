"""What a call may cost beyond its bytes and its output cap, found in the request before the call.

Why: the reservation bounds a prompt by its bytes and the answer by ``max_tokens``. A server-side
tool's fee per use, the pages it fetches, a search's results and an image or file given by URL
are not in those bytes. Each is bounded from the request (``max_uses``, ``max_tool_calls``,
``max_content_tokens``, the provider's documented image sizes) and reserved, or the call is
refused with a 400 that says why and how to bound it. Client-side tools (functions, bash, the
text editor, computer use) cost only the tokens the request and answer already carry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from api.errors import BadRequest
from workflows.contracts import Price, Target, WireFormat

SEARCH_RESULT_TOKENS = 20_000
"""Input tokens held for the results of each web search. An allowance, not a bound: neither
Anthropic nor OpenAI caps a search's results, which they bill as input tokens (the README's
Prices section lists it)."""
FILE_SEARCH_CHUNK_TOKENS = 4_096
"""OpenAI's largest vector-store chunk (``max_chunk_size_tokens``), and 50 its largest
``max_num_results``: a file search adds at most their product of input tokens."""
FILE_SEARCH_MAX_RESULTS = 50
ANTHROPIC_IMAGE_TOKENS = 8_848
"""Anthropic bills an image ``width * height / 750`` tokens after scaling its long edge to at
most 2,576 px (Opus 4.7; 1,568 px and about 1,600 tokens before): 2,576 * 2,576 / 750, rounded
up."""
OPENAI_IMAGE_TOKENS = 3_780
"""OpenAI's dearest documented image rule but one: 1,536 patches of 32 px at gpt-4.1-nano's
multiplier of 2.46 (tile models reach 85 + 8 * 170 = 1,445 tokens)."""
GPT_4O_MINI_IMAGE_TOKENS = 48_169
"""gpt-4o-mini bills an image 2,833 tokens plus 5,667 per 512 px tile, up to 8 tiles."""
_DETAILS = (None, "low", "high", "auto")

CLIENT_TOOLS = ("custom", "bash_", "text_editor_", "computer_", "memory_", "tool_search_tool_")
"""Anthropic tool types the client runs (or whose definitions the request itself holds)."""
RESPONSES_CLIENT_TOOLS = (
    "function", "custom", "local_shell", "shell", "apply_patch", "computer_use_preview", "computer"
)  # fmt: skip
RESPONSES_FEE_TOOLS = {"web_search": "web_search", "file_search": "file_search"}
"""Responses tool types (dated versions included) billed per call, and the fee each takes."""


@dataclass
class Extras:
    """What a request may cost beyond its bytes: uses of tools billed per use, and input
    tokens the provider adds (tool results) or fetches (media by URL), for each target."""

    uses: dict[str, int] = field(default_factory=dict)
    tool_tokens: int = 0
    hour_cache: bool = False
    """The request asks for cache writes that last longer than 5 minutes (Anthropic's
    ``cache_control.ttl``): only then can a provider bill one-hour writes."""
    images: list[int] = field(default_factory=list)
    """Per image: bytes the request carries of it (0 for a URL or a file id)."""

    def use(self, tool: str, uses: int, tokens_each: int = 0) -> None:
        self.uses[tool] = self.uses.get(tool, 0) + uses
        self.tool_tokens += uses * tokens_each

    def input_tokens(self, chain: Sequence[Target]) -> int:
        """Input tokens to add to the byte bound: the most any target of ``chain`` counts."""
        if not self.images:
            return self.tool_tokens
        per_image = max(image_tokens(t) for t in chain)
        return self.tool_tokens + sum(max(per_image - carried, 0) for carried in self.images)


def image_tokens(target: Target) -> int:
    """The most input tokens one image costs at ``target``, as its provider documents."""
    if target.api == "anthropic":
        return ANTHROPIC_IMAGE_TOKENS
    return GPT_4O_MINI_IMAGE_TOKENS if "gpt-4o-mini" in target.model else OPENAI_IMAGE_TOKENS


def inspect(body: dict[str, Any], inbound: WireFormat) -> Extras:
    """The request's extras; ``BadRequest`` for any cost runcap cannot bound."""
    extras = Extras()
    if inbound == "anthropic":
        _anthropic_tools(body, extras)
        parts = _walk([body, body.get("system"), body.get("messages"), body.get("tools")])
    elif inbound == "openai":
        _chat_options(body)
        parts = _walk(body.get("messages"))
    else:
        _responses_tools(body, extras)
        parts = _walk(body.get("input"))
    for part in parts:
        if _long_ttl(part):
            extras.hour_cache = True
        _media(part, extras)
    return extras


def _long_ttl(item: dict[str, Any]) -> bool:
    control = item.get("cache_control")
    return isinstance(control, dict) and control.get("ttl", "5m") != "5m"


def priced(chain: Sequence[Target], extras: Extras, inbound: WireFormat) -> list[Target]:
    """``chain`` with each target's tool fees holding the call's uses; ``BadRequest`` when a
    target that could serve the tools (one of the caller's format) has no price for one."""
    out = []
    for target in chain:
        fees = {fee.tool: fee for fee in target.price.tools}
        serves = target.api == inbound
        for tool in extras.uses:
            if serves and tool not in fees:
                raise BadRequest(
                    f"{tool} is billed per use and {target.provider}/{target.model} has no "
                    f"price for it; add one to the price overrides ('tools') or leave the "
                    f"tool out",
                    code="unpriced_tool",
                )
        tools = tuple(
            replace(fee, max_uses=extras.uses.get(fee.tool, 0) if serves else 0)
            for fee in fees.values()
        )
        price = replace(target.price, tools=tools)
        out.append(replace(target, price=price if extras.hour_cache else _no_hour(price)))
    return out


def _no_hour(price: Price) -> Price:
    """``price`` for a call that cannot write one-hour cache entries: its reservation need not
    hold their dearer rate (0 bills a one-hour write as a cache write, see ``Price``)."""
    tiers = tuple(replace(tier, cache_write_1h=0) for tier in price.tiers)
    return replace(price, cache_write_1h=0, tiers=tiers)


def _refuse(param: str, why: str) -> BadRequest:
    return BadRequest(f"{param}: {why}", code="unbounded_cost", param=param)


MAX_COUNT = 1_000_000
"""The most uses, calls or content tokens a request may name: far above any real call, and
far below what would overflow the figures downstream (Temporal, the ledger, telemetry)."""


def _count(holder: dict[str, Any], name: str, why: str, where: str) -> int:
    """``holder[name]``, a whole number from 1 to ``MAX_COUNT``, or a 400 saying ``why``."""
    value = holder.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise _refuse(
            f"{where}.{name}" if where else name,
            f"{why} so runcap can reserve for it before the call; set {name} "
            f"(a whole number from 1 to {MAX_COUNT:,})",
        )
    return value


def _anthropic_tools(body: dict[str, Any], extras: Extras) -> None:
    if body.get("mcp_servers"):
        raise _refuse(
            "mcp_servers",
            "a remote MCP server's tool results are input tokens runcap cannot bound before "
            "the call; run the MCP tools on the client instead",
        )
    for n, raw in enumerate(_list(body.get("tools"))):
        tool, where = _dict(raw), f"tools[{n}]"
        kind = str(tool.get("type") or "custom")
        if kind.startswith(CLIENT_TOOLS):
            continue
        if kind.startswith("web_search_"):
            why = "web search is billed per search, and its results as input tokens,"
            extras.use("web_search", _count(tool, "max_uses", why, where), SEARCH_RESULT_TOKENS)
        elif kind.startswith("web_fetch_"):
            why = "each fetched page is billed as input tokens,"
            pages = _count(tool, "max_uses", why, where)
            extras.tool_tokens += pages * _count(tool, "max_content_tokens", why, where)
        elif kind.startswith("code_execution_"):
            why = "code execution is billed by container time, priced per use in the overrides,"
            extras.use("code_execution", _count(tool, "max_uses", why, where))
        else:
            raise _refuse(where, _unknown(kind))


def _unknown(kind: str) -> str:
    return (
        f"runcap does not know how the server tool {kind!r} is billed, so it cannot reserve "
        f"for it; leave it out"
    )


def _chat_options(body: dict[str, Any]) -> None:
    if body.get("web_search_options") is not None:
        raise _refuse(
            "web_search_options",
            "a search model's searches are billed per call and not reported back, so runcap "
            "cannot bound or bill them; use /v1/responses with the web_search tool and "
            "max_tool_calls",
        )
    if "audio" in _list(body.get("modalities")) or body.get("audio") is not None:
        raise _refuse("modalities", "runcap prices text tokens only, not audio output")
    for n, raw in enumerate(_list(body.get("tools"))):
        kind = str(_dict(raw).get("type") or "function")
        if kind not in ("function", "custom"):
            raise _refuse(f"tools[{n}]", _unknown(kind))


def _responses_tools(body: dict[str, Any], extras: Extras) -> None:
    if body.get("prompt") is not None:
        raise _refuse(
            "prompt", "a stored prompt's size is unknown to runcap; send its text in input"
        )
    tools = [_dict(t) for t in _list(body.get("tools"))]
    for n, tool in enumerate(tools):
        kind = str(tool.get("type") or "function")
        if kind in RESPONSES_CLIENT_TOOLS:
            continue
        fee = next((f for k, f in RESPONSES_FEE_TOOLS.items() if kind.startswith(k)), None)
        if fee is None and kind != "code_interpreter":
            raise _refuse(f"tools[{n}]", _unknown(kind))
        why = f"the {kind} tool is billed per call (and its results as input tokens),"
        calls = _count(body, "max_tool_calls", why, "")
        if fee == "web_search":
            extras.use("web_search", calls, SEARCH_RESULT_TOKENS)
        elif fee == "file_search":
            results = tool.get("max_num_results")
            if not isinstance(results, int) or isinstance(results, bool) or results < 1:
                results = FILE_SEARCH_MAX_RESULTS
            results = min(results, FILE_SEARCH_MAX_RESULTS)
            extras.use("file_search", calls, results * FILE_SEARCH_CHUNK_TOKENS)
        else:
            extras.use("code_execution", calls)


def _media(part: dict[str, Any], extras: Extras) -> None:
    """One content part: an image adds its documented most (less the bytes the request
    carries of it); a file runcap cannot see, and audio, are refused."""
    kind = part.get("type")
    if kind == "image":  # Anthropic
        source = _dict(part.get("source"))
        inline = source.get("type") == "base64"
        extras.images.append(len(str(source.get("data", ""))) if inline else 0)
    elif kind in ("image_url", "input_image"):  # OpenAI chat, Responses
        image = part.get("image_url")
        url = str(_dict(image).get("url", "") if isinstance(image, dict) else image or "")
        detail = _dict(image).get("detail") if isinstance(image, dict) else part.get("detail")
        if detail not in _DETAILS:
            raise _refuse(
                "detail",
                f"runcap knows the image token rules of low, high and auto, not {detail!r}",
            )
        extras.images.append(len(url) if url.startswith("data:") else 0)
    elif kind in ("document", "file", "input_file"):
        _file(part)
    elif kind == "input_audio":
        raise _refuse("input_audio", "runcap prices text tokens only, not audio input")


def _file(part: dict[str, Any]) -> None:
    source = _dict(part.get("source") or part.get("file"))
    ref = part.get("file_id") or part.get("file_url") or source.get("file_id")
    if ref or source.get("type") in ("url", "file"):
        raise _refuse(
            str(part.get("type")),
            "a file given by URL or file id is billed by its pages and tokens, which runcap "
            "cannot see before the call; send its content inline (base64 or text)",
        )


_NESTED = ("content", "output", "source")
"""Where parts hold parts: a message's or tool result's ``content``, a Responses tool output,
an Anthropic document's ``source``. Tool calls' arguments are never read as content."""


_MEDIA = {"image", "image_url", "input_image", "document", "file", "input_file", "input_audio"}


def _walk(node: Any) -> list[dict[str, Any]]:
    """Every media part inside ``node``, nested ones included, and every part that asks for
    caching. Measured (``python -m bench pricing``): about 1 ms per MB of conversation, a
    tenth of what parsing it takes."""
    found: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            if item.get("type") in _MEDIA or "cache_control" in item:
                found.append(item)
            for key in _NESTED:
                value = item.get(key)
                if isinstance(value, list | dict):
                    stack.append(value)
    return found


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
