"""torch.hub entry points: a trained gantrain generator, from an exported folder or a run.

    G = torch.hub.load("<owner>/gantrain", "generator", path="path/to/export")
    G = torch.hub.load("/path/to/gantrain", "generator", source="local", path="path/to/export")

``path``: a folder of ``gantrain-export --format safetensors`` (rebuilt from its
``config.json`` and ``generator.safetensors`` alone, nothing unpickled) or a gantrain run
directory (its ``checkpoints/generator.pt``, read with ``weights_only=True``). The model
code comes from this repository, never from the folder: its ``_target_``s must name
gantrain, torch or torchvision classes (``validate.check_all_targets``).
"""

from __future__ import annotations

dependencies = ["torch", "safetensors", "omegaconf", "hydra"]


def generator(path: str, device: str = "cpu"):
    """G in eval mode. A translator's test mode (pix2pix's: train mode, one image at a
    time) is applied by ``translator``; G itself is the net as stored."""
    from gantrain.trained import load_generator

    return load_generator(path, device)[0]


def translator(path: str, direction: str = "AB", seed: int | None = 0, device: str = "cpu"):
    """A translator's ``images -> images`` in ``direction`` as the run's ``model.test_mode``
    runs it (``gantrain/test_time.py``; ``seed``: train mode's dropout masks)."""
    from gantrain.tools.run import open_run

    return open_run(path, device).translator(direction, seed)
