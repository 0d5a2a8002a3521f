"""The learning-rate schedule: constant, then linear decay to 0.

CycleGAN keeps the rate constant for 100 epochs, then lets it fall linearly to 0 over
the next 100 (Zhu et al., 2017, section 4, "Training details"); pix2pix's code does the
same (its ``n_epochs``/``n_epochs_decay``). ``trainer.lr_decay_start`` is where the fall
begins, ``trainer.steps`` where it ends.
"""

from __future__ import annotations

from collections.abc import Callable


def linear_decay(start: int | None, end: int) -> Callable[[int], float]:
    """The learning-rate factor at a step: constant, then linear decay to 0 at ``end``
    from ``start`` on. A plain function, which LambdaLR leaves out of its state dict (a
    resumed run may have a new ``end``)."""

    def factor(step: int) -> float:
        if start is None or step < start:
            return 1.0
        return max(0.0, (end - step) / max(end - start, 1))

    return factor
