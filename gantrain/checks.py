"""Small checks every layer may use: they raise ``OptionError`` about a parameter named
as its owner knows it, and the config layer adds the key path (``gantrain/errors.py``).

The kinds of value a config holds are written once here, as annotated types that the
signatures of nets, losses, models and data builders use (``width: PositiveInt``):
``validate.py`` reads the bound from the annotation and checks every config value of
that kind before anything is built, and the constructors' own ``at_least`` calls check
the same bound when they are called directly. Every float read from a config must be
finite: YAML spells ``nan`` and ``.inf``, and a NaN compares false with every bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from gantrain.errors import OptionError


@dataclass(frozen=True)
class AtLeast:
    """An annotation's lower bound: ``value >= low`` (``> low`` with ``strict``)."""

    low: float
    strict: bool = False

    def check(self, name: str, value: float) -> None:
        at_least(name, value, self.low, self.strict)


# Sizes, widths and counts of things that must exist: image sizes, channels, batch sizes.
PositiveInt = Annotated[int, AtLeast(1)]
# Counts that may be zero: extra blocks, pool sizes, workers, classes (0: unconditional).
Count = Annotated[int, AtLeast(0)]
# Weights of loss terms (0 turns a term off) and other non-negative factors.
Weight = Annotated[float, AtLeast(0)]
# Strictly positive amounts: learning rates, clipping bounds.
PositiveFloat = Annotated[float, AtLeast(0, strict=True)]


def finite(name: str, value: float) -> None:
    """``value`` is a finite number, else an error naming ``name``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise OptionError(name, f"{name}={value} is not a finite number: fix the value of {name}")


def at_least(name: str, value: float, low: float, strict: bool = False) -> None:
    """``value`` >= ``low`` (> with ``strict``), else an error naming ``name``. NaN is
    refused (it compares false with every bound); so is infinity."""
    finite(name, value)
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
    if not (above and below):  # NaN is neither: refused here too
        interval = f"{'[' if closed[0] else '('}{low}, {high}{']' if closed[1] else ')'}"
        raise OptionError(name, f"{name}={value} must lie in {interval}" + (f": {hint}" if hint else ""))
