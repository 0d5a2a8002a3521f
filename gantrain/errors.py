"""The one exception type for mistakes a user can fix.

A ``UserError`` carries a single line that names the problem and the fix. The CLI
prints it as ``gantrain: error: <line>`` and exits non-zero, with no traceback. Every
layer may raise it; nothing below the CLI catches it.
"""


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
