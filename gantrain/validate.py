"""Type and key checks of config nodes against the Python they configure.

Hydra rejects unknown keys at composition (its configs are in struct mode), but YAML
values are untyped: ``trainer.steps=abc`` composes fine and would fail deep inside
training. Nodes with a ``_target_`` are checked against the target's signature and
type hints; plain settings against a dataclass. Every failure is a ``UserError``
that names the key, what it expected, and the fix. Only plain Python values come in:
``build.py`` converts OmegaConf nodes to dicts first.

Beyond the type, a value is checked against its meaning where the hint says it: a
bound annotated on the type (``PositiveInt``, ``Weight``: ``gantrain/checks.py``), and,
for every value, that each float in it is finite (NaN and infinity are never a setting).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Union

from gantrain.checks import AtLeast
from gantrain.errors import UserError, keyed

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}
MISSING = "???"
# A config may build objects from these packages only: a `_target_` is code that runs,
# and a config can arrive from anywhere (a shared experiment file, a run directory).
ALLOWED_TARGET_PACKAGES = ("gantrain", "torch", "torchvision")
# ... minus the parts of torch that load or fetch code (pickles, hub repos, extensions).
DENIED_TARGETS = (
    "torch.hub",
    "torch.load",
    "torch.package",
    "torch.serialization",
    "torch.jit.load",
    "torch.utils.cpp_extension",
    "torch.ops",
    "torch.classes",
    "torch.utils.model_zoo",
    "torch.compile",
    "torch.export.load",
)


def check_target_allowed(target: str, path: str) -> None:
    """Refuse a ``_target_`` outside gantrain, torch and torchvision before importing anything."""
    denied = any(target == d or target.startswith(d + ".") for d in DENIED_TARGETS)
    if target.split(".")[0] not in ALLOWED_TARGET_PACKAGES or denied:
        raise UserError(
            f"{path}._target_={target} is refused: configs may only build objects from "
            f"{', '.join(ALLOWED_TARGET_PACKAGES)} (and not torch's code loaders); point "
            f"it at a gantrain, torch or torchvision class"
        )


def check_all_targets(node: Any, path: str = "") -> None:
    """Every ``_target_`` anywhere in a plain config tree, nested ones included (Hydra
    instantiates those recursively)."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None:
            check_target_allowed(str(target), path or "config")
        for key, value in node.items():
            check_all_targets(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, (list, tuple)):
        for k, value in enumerate(node):
            check_all_targets(value, f"{path}[{k}]")


def resolve_target(node: dict, path: str) -> Callable:
    target = node.get("_target_")
    if not isinstance(target, str) or "." not in target:
        raise UserError(f"{path}._target_ must name a class or function, e.g. torch.optim.Adam")
    check_target_allowed(target, path)
    module_name, _, attr = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        raise UserError(f"{path}._target_={target} cannot be imported: check the spelling") from None


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *marks = typing.get_args(hint)
        bounds = [f"{'>' if m.strict else '>='} {m.low:g}" for m in marks if isinstance(m, AtLeast)]
        return _describe(base) + (f" {bounds[0]}" if bounds else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None))
    if origin in (list, tuple) or hint in (list, tuple):
        return "a list"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def fits(value: Any, hint: Any) -> bool:
    """Whether a plain config value fits a type hint; unknown hints are not judged."""
    if hint is inspect.Parameter.empty or hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        return fits(value, typing.get_args(hint)[0])
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (Union, types.UnionType):
        # Union[float, Tensor]: a YAML value can only ever be the float.
        arms = [a for a in typing.get_args(hint) if _expressible(a)] or typing.get_args(hint)
        return any(fits(value, arm) for arm in arms)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.get_origin(typing.Sequence[int])) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if origin is tuple and args and Ellipsis not in typing.get_args(hint) and len(args) != len(value):
            return False
        return all(fits(v, args[min(i, len(args) - 1)]) for i, v in enumerate(value)) if args else True
    if isinstance(hint, type) and hint.__module__ == "builtins":
        return isinstance(value, hint)
    return True  # a library type (Tensor, Path, ...) that YAML cannot express: don't guess


def _expressible(hint: Any) -> bool:
    """Whether YAML can spell a value of this type."""
    origin = typing.get_origin(hint) or hint
    if origin is typing.Annotated:
        return _expressible(typing.get_args(hint)[0])
    return (
        hint is type(None)
        or origin is typing.Literal
        or origin in (bool, int, float, str, list, tuple, dict)
        or origin is typing.get_origin(typing.Sequence[int])
    )


def _hints(fn: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn, include_extras=True)
    except Exception:  # unresolvable forward references in a library: check names only
        return {}


def _nonfinite(value: Any) -> float | None:
    """The first NaN or infinity anywhere in a plain value (lists and dicts included)."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return next((bad for bad in map(_nonfinite, items) if bad is not None), None)


def _bounds(value: Any, hint: Any) -> list[AtLeast]:
    """The bounds annotated on the arm of ``hint`` that ``value`` fits."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *marks = typing.get_args(hint)
        return [m for m in marks if isinstance(m, AtLeast)] + _bounds(value, base)
    if origin in (Union, types.UnionType):
        arm = next((a for a in typing.get_args(hint) if fits(value, a)), None)
        return _bounds(value, arm) if arm is not None else []
    return []


def check_value(path: str, value: Any, hint: Any) -> None:
    """A config value against its parameter's type hint: the type, a bound annotated on
    it, and (whatever the hint) no NaN or infinity anywhere in it."""
    if value == MISSING:
        raise UserError(f"{path} is required: add {path}=...")
    bad = _nonfinite(value)
    if bad is not None:
        shown = value if isinstance(value, float) else f"{value!r} ({bad} in it)"
        raise UserError(f"{path}={shown} is not a finite number: fix the value of {path}")
    if not fits(value, hint):
        raise UserError(f"{path}={value!r} is not {_describe(hint)}: fix the value of {path}")
    for bound in _bounds(value, hint):
        try:
            bound.check(path, value)
        except UserError as exc:  # already named by its whole key: final, not to be keyed again
            raise UserError(str(exc)) from None


def check_call(node: dict, path: str, provided: Iterable[str] = ()) -> Callable:
    """Check a ``_target_`` node's keys and value types against its target's signature.

    ``provided`` names the arguments that ``build.py`` passes itself (shapes from the
    data, parameters for optimizers); a config may not set those."""
    target = resolve_target(node, path)
    signature = inspect.signature(target)
    hints = _hints(target)
    params = signature.parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    provided = set(provided)
    accepted = [
        n
        for n, p in params.items()
        if n not in provided and n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    for key, value in node.items():
        if key in HYDRA_KEYS or isinstance(value, dict) and "_target_" in value:
            continue
        if key in provided:
            raise UserError(
                f"{path}.{key} is set by gantrain from the data and the other config groups: remove it from {path}"
            )
        if key not in params and not takes_any:
            raise UserError(
                f"unknown option {path}.{key}: {node['_target_']} takes {', '.join(accepted) or 'no options'}"
            )
        check_value(f"{path}.{key}", value, hints.get(key, params[key].annotation if key in params else Any))
    for name in accepted:
        p = params[name]
        if p.default is p.empty and name not in node and not node.get("_partial_"):
            raise UserError(f"{path}.{name} is required: add {path}.{name}=...")
    return target


def to_dataclass(cls: type, node: dict, path: str):
    """Build a settings dataclass from a plain dict, checking every key and type; its
    own range checks come back naming ``<path>.<field>``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls, include_extras=True)
    for key, value in node.items():
        if key not in fields:
            raise UserError(f"unknown option {path}.{key}: {path} takes {', '.join(fields)}")
        check_value(f"{path}.{key}", value, hints[key])
    with keyed(path):  # the dataclass checks its ranges under its own field names
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in node.items()})
