"""Small checks every layer may use: they raise ``OptionError`` about a parameter named
as its owner knows it, and the config layer adds the key path (``gantrain/errors.py``)."""

from __future__ import annotations

from gantrain.errors import OptionError


def at_least(name: str, value: float, low: float, strict: bool = False) -> None:
    """``value`` >= ``low`` (> with ``strict``), else an error naming ``name``."""
    if value < low or (strict and value == low):
        relation = "greater than" if strict else "at least"
        raise OptionError(name, f"{name}={value} must be {relation} {low}: fix the value of {name}")


def within(
    name: str, value: float, low: float, high: float, hint: str = "", closed: tuple[bool, bool] = (True, False)
) -> None:
    """``value`` in the interval from ``low`` to ``high`` (``closed`` says which ends
    belong to it, default [low, high)), else an error naming ``name`` and ``hint``."""
    above = value >= low if closed[0] else value > low
    below = value <= high if closed[1] else value < high
    if not (above and below):
        interval = f"{'[' if closed[0] else '('}{low}, {high}{']' if closed[1] else ')'}"
        raise OptionError(name, f"{name}={value} must lie in {interval}" + (f": {hint}" if hint else ""))
