"""The one exception type for mistakes a user can fix.

A ``UserError`` carries a single line that names the problem and the fix. The CLI
prints it as ``gantrain: error: <line>`` and exits non-zero, with no traceback. Every
layer may raise it; nothing below the CLI catches it.
"""


class UserError(Exception):
    """A bad config, missing data, or an impossible combination: the user can fix it."""

    def __init__(self, message: str) -> None:
        # Keep it to one line whatever the caller passed in.
        super().__init__(" ".join(str(message).split()))
