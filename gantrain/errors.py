"""The exception types for mistakes a user can fix, on the ground floor.

A ``UserError`` carries a single line that names the problem and the fix. The CLI
prints it as ``gantrain: error: <line>`` and exits non-zero, with no traceback. Every
layer may raise it; nothing below the CLI catches it.

An ``OptionError`` is a ``UserError`` about one of a component's *own* parameters, named
as the component knows it (``cycle_weight``, ``root``): nets, losses, models, data and
the engine know no config keys. The layer that read the config wraps the component's
construction in ``keyed("model")`` (or ``"data"``, ``"model.generator"``, ...), which
re-raises the error with the key path the user must change (``model.cycle_weight``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class UserError(Exception):
    """A bad config, missing data, or an impossible combination: the user can fix it."""

    def __init__(self, message: str) -> None:
        text = str(message)
        # A DataLoader worker's error comes back as UserError("Caught UserError in DataLoader
        # worker process N. Original Traceback ...: gantrain.errors.UserError: <line>"): keep <line>.
        if text.startswith("Caught UserError"):
            marker = "gantrain.errors.UserError: "
            text = text.rsplit(marker, 1)[-1] if marker in text else text.splitlines()[0]
        # Keep it to one line whatever the caller passed in.
        super().__init__(" ".join(text.split()))


class OptionError(UserError):
    """A bad value of the parameter ``option``, which ``message`` names bare: every
    occurrence of it as a word of its own (after a space, a bracket or a quote, before
    ``=``, a space or punctuation; not inside a path) becomes the key path under ``keyed``."""

    def __init__(self, option: str, message: str, also: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.option = option
        self.also = tuple(also)  # other parameters the message names (keyed alike)

    def under(self, prefix: str, paths: Mapping[str, str] | None = None) -> UserError:
        """The same error, its option named ``<prefix>.<option>``, or ``paths[option]``
        for an argument that the config layer fills from another key (a net's
        ``image_size`` comes from ``data.image_size``). A plain ``UserError``: the key
        path is final, an enclosing ``keyed`` leaves it alone."""
        text = str(self)
        for option in (self.option, *self.also):
            # The option as a word of the message, not part of a path or a value ("/tmp/root/").
            pattern = rf"(?:^|(?<=[\s(\[`'\"])){re.escape(option)}(?=$|[\s=:,;)\]`'\"]|\.(?:\s|$))"
            text = re.sub(pattern, (paths or {}).get(option, f"{prefix}.{option}"), text)
        return UserError(text)


@contextmanager
def keyed(prefix: str, paths: Mapping[str, str] | None = None) -> Iterator[None]:
    """Option errors raised inside name the key path ``<prefix>.<option>`` (or
    ``paths[option]``). Not nested: the innermost ``keyed`` names the key."""
    try:
        yield
    except OptionError as exc:
        raise exc.under(prefix, paths) from None


@contextmanager
def one_line_errors(prog: str) -> Iterator[None]:
    """A command's error contract (``gantrain-eval``, ``-export``, ``-report``, ``-doctor``
    and the tools): a ``UserError`` raised inside ends the command with the one line
    ``<prog>: error: <line>`` on stderr and exit status 2, no traceback. (``gantrain`` itself
    says it in ``cli.fail``, which also names the torchrun rank.)"""
    try:
        yield
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        sys.exit(2)
