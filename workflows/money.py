"""Money at the edges: exact conversion between USD decimal strings and integer micro-dollars.

It lives next to ``MICROS_PER_USD`` so every layer (workflows included) converts the same way;
inside, money is always an integer number of micro-dollars.
"""

from decimal import Decimal, InvalidOperation

from workflows.contracts import MICROS_PER_USD

__all__ = ["MICROS_PER_USD", "PPM", "micros_to_usd", "share_text", "usd_to_micros"]
PPM = 1_000_000
"""Shares (a sub-agent's of its parent's budget) are kept in millionths, exact like money."""


def usd_to_micros(usd: str | Decimal | int) -> int:
    """Exact conversion; refuses floats and anything finer than one micro-dollar."""
    if isinstance(usd, float | bool):
        raise TypeError("give money as a decimal string, never a float")
    try:
        value = Decimal(usd)
    except InvalidOperation:
        raise ValueError(f"not a decimal amount: {usd!r}") from None
    if not value.is_finite():
        raise ValueError(f"not a finite amount: {usd!r}")
    micros = value * MICROS_PER_USD
    if micros != micros.to_integral_value():
        raise ValueError(f"{usd} USD is more precise than one micro-dollar")
    return int(micros)


def micros_to_usd(micros: int) -> str:
    """Micro-dollars as a USD string with exactly six decimals (``1500000`` -> ``"1.500000"``)."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{frac:06d}"


def share_text(ppm: int | None) -> str | None:
    """A share in millionths as the api shows it: ``250000`` is ``"0.25"``."""
    return None if ppm is None else f"{(Decimal(ppm) / PPM).normalize():f}"
