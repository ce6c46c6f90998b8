"""Model names as metric labels: the price book's canonical names, and ``other`` for the rest.

Why: every distinct label value is a new set of series that lives as long as the process (in
``/metrics``) or the MeterProvider (OTLP), and the model name comes from the client: 30 made-up
names such as ``r1/gpt-4.1`` (served and billed as gpt-4.1) made 540 new Prometheus series. So a
label is a model's canonical name (``gpt-4.1`` for ``r1/gpt-4.1`` or ``gpt-4.1-2025-04-14``)
when the deployment knows that name: runcap's own models, the price overrides, the models the
routes name, and genai-prices' OpenAI and Anthropic models (``PriceBook.models()``). Any other
name, a model priced by the floor price included, is ``other``. The label values are bounded by
the configuration, whatever clients send. Spans keep the name as sent: they are not aggregated.

One labeller per process, as the metrics are (the OpenTelemetry meter is global): the api
installs one built from its price book and routes; until then, the shipped prices label.
"""

from __future__ import annotations

from collections.abc import Iterable

from providers.pricing import PriceBook

OTHER = "other"
_MEMO_SIZE = 4096
"""Names remembered with their label; past it the memo starts over (a lookup is ~60 µs)."""


class ModelLabels:
    """Maps a model name as sent or routed to its metric label."""

    def __init__(self, prices: PriceBook, configured: Iterable[str] = ()) -> None:
        """``configured``: the models the deployment names (its routes' models and targets);
        one without a price of its own (a route's alias such as ``coder``) is its own label."""
        self.prices = prices
        known = [prices.canonical(model) for model in prices.models()]
        known += [prices.canonical(model) or model for model in configured if model != "*"]
        self.names = frozenset(name for name in known if name)
        self._memo: dict[str, str] = {}

    def __call__(self, model: str) -> str:
        label = self._memo.get(model)
        if label is None:
            canonical = self.prices.canonical(model) or model
            label = canonical if canonical in self.names else OTHER
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            self._memo[model] = label
        return label


_installed: ModelLabels | None = None


def install(labels: ModelLabels) -> None:
    """Label this process's metrics with ``labels`` from now on."""
    global _installed
    _installed = labels


def model_label(model: str) -> str:
    """The metric label of ``model`` in this process."""
    global _installed
    if _installed is None:
        _installed = ModelLabels(PriceBook())
    return _installed(model)
