"""Makes ``import gantrain`` work in the scripts: the installed gantrain when there is
one (editable or not; the GPU machine installs it into a folder on PYTHONPATH, and
there the checkout's own folder, which has no ``gantrain/conf``, must not shadow it),
else this checkout's. Import it before gantrain: ``import _checkout  # noqa: F401``."""

import sys
from importlib.util import find_spec
from pathlib import Path

try:
    installed = find_spec("gantrain.conf") is not None
except ImportError:  # no gantrain at all
    installed = False
if not installed:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
