"""gantrain: config-driven GAN training with PyTorch and Hydra.

``gantrain.load_generator(folder)``: a trained generator, from a run directory or from a
folder of ``gantrain-export --format safetensors`` (``trained.load_generator``).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_generator"]


def __getattr__(name: str) -> Any:
    # Lazily (PEP 562): importing any gantrain module must not pull in Hydra and the nets.
    if name == "load_generator":
        from gantrain.trained import load_generator

        return load_generator
    raise AttributeError(f"module 'gantrain' has no attribute {name!r}")
