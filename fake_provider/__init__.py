"""A fake LLM provider speaking OpenAI and Anthropic, for tests, the offline demo and benchmarks."""

from fake_provider.runner import FakeControl, FakeProvider
from fake_provider.script import Fault, Script, ToolCall
from fake_provider.server import create_app

__all__ = ["FakeControl", "FakeProvider", "Fault", "Script", "ToolCall", "create_app"]
