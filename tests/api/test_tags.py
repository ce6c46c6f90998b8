"""Tag parsing and validation: body metadata, header, key defaults, limits."""

from __future__ import annotations

import pytest

from api.errors import BadRequest
from api.tags import agent_of, call_tags, merge_tags, step_of, task_of


def test_openai_sdk_metadata_form_is_read() -> None:
    """The extra_body={"metadata": {"tags": [...]}} form yields those tags in order."""
    body = {"model": "m", "metadata": {"tags": ["agent:coder", "task:123", "step:edit"]}}
    tags = call_tags(body, None)
    assert tags == ["agent:coder", "task:123", "step:edit"]
    assert (agent_of(tags), task_of(tags), step_of(tags)) == ("coder", "123", "step:edit")


def test_header_and_defaults_merge_and_dedupe() -> None:
    """Header tags add to body tags; key defaults fill in; duplicates collapse."""
    body = {"metadata": {"tags": ["step:edit", "x"], "user_id": "u1"}}
    tags = call_tags(body, " task:9 , x,,", ["agent:coder", "team:core", "x"])
    assert tags == ["step:edit", "x", "task:9", "agent:coder", "team:core"]


def test_request_tag_overrides_key_default_of_same_prefix() -> None:
    """A request's agent: tag replaces the key's default agent: tag."""
    assert call_tags({"metadata": {"tags": ["agent:reviewer"]}}, None, ["agent:coder"]) == [
        "agent:reviewer"
    ]


def test_tags_as_a_comma_separated_string() -> None:
    """Where metadata values must be strings (the Responses API), tags may be one string."""
    body = {"metadata": {"tags": "agent:coder, task:7,step:edit"}}
    assert call_tags(body, None, ()) == ["agent:coder", "task:7", "step:edit"]


def test_no_tags_anywhere() -> None:
    """A body without metadata and no header give only the key's defaults."""
    assert call_tags({"model": "m"}, None, ["agent:a"]) == ["agent:a"]
    assert call_tags([1, 2], "", ()) == []
    assert (task_of([]), agent_of([]), step_of([])) == ("", "", "(none)")


@pytest.mark.parametrize(
    ("body", "header", "fragment"),
    [
        ({"metadata": {"tags": 7}}, None, "list of strings or a comma-separated string"),
        ({"metadata": {"tags": "task:1,task:2"}}, None, "conflicting task"),
        ({"metadata": {"tags": [1]}}, None, "strings"),
        ({"metadata": "x"}, None, "object"),
        ({"metadata": {"tags": ["has space"]}}, None, "characters"),
        ({"metadata": {"tags": ["é"]}}, None, "characters"),
        ({"metadata": {"tags": ["x" * 129]}}, None, "1 to 128"),
        ({"metadata": {"tags": [""]}}, None, "1 to 128"),
        ({"metadata": {"tags": ["task:"]}}, None, "empty value"),
        ({"metadata": {"tags": ["task:1", "task:2"]}}, None, "conflicting task"),
        ({"metadata": {"tags": ["step:a"]}}, "step:b", "conflicting step"),
        ({"metadata": {"tags": [f"t{i}" for i in range(33)]}}, None, "too many"),
        ({}, "ok,bad tag", "characters"),
    ],
)
def test_bad_tags_are_refused_clearly(body: object, header: str | None, fragment: str) -> None:
    """Wrong types, characters, lengths, conflicts and counts raise BadRequest saying why."""
    with pytest.raises(BadRequest) as caught:
        call_tags(body, header)
    assert fragment in caught.value.message
    assert caught.value.status == 400


def test_limit_counts_key_defaults() -> None:
    """32 request tags plus one key default is too many; 32 in all is fine."""
    tags = [f"t{i}" for i in range(32)]
    assert len(merge_tags(tags)) == 32
    with pytest.raises(BadRequest):
        merge_tags(tags, ["extra"])
    allowed = "A-z_0.9:/@+-x"
    assert merge_tags([allowed]) == [allowed]
