"""A fake LLM provider speaking OpenAI and Anthropic, for tests, the offline demo and benchmarks."""

from activities.fake_provider.runner import FakeProvider
from activities.fake_provider.script import Fault, Script, ToolCall
from activities.fake_provider.server import create_app

__all__ = ["FakeProvider", "Fault", "Script", "ToolCall", "create_app"]
