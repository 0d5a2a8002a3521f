"""Time-based checkpoints (``trainer.checkpoint_minutes``): a checkpoint once that much
wall time has passed since the last one written or loaded, beside the step-based
``checkpoint_every``.

A step count bounds the work a SIGKILL loses only in steps; how long those steps take
depends on the model, the batch and the hardware (500 steps are seconds for a tiny GAN on
a GPU, an hour for a large one on a CPU). A clock bounds the loss in time, whatever the
step speed. Writing a checkpoint reads the state and draws no random numbers, so a
checkpoint written by time changes neither the training RNG nor the data position: a
run is the same whether or not (and whenever) the clock fired.

Under data parallelism every process must decide alike (a checkpoint gathers every
process's RNG state, a collective), but their clocks differ slightly: the decision is
``parallel.any`` of theirs, taken every ``CHECK_EVERY`` steps only, a network round
trip. One process needs no agreement and reads its clock every step (nanoseconds).
"""

from __future__ import annotations

import time

from gantrain.engine.distributed import SingleProcess

CHECK_EVERY = 8  # steps between the processes' agreements on the clock (torchrun)

# The clock: monotonic (a change of the system time neither fires nor delays a checkpoint).
# A module attribute, so that tests replace it instead of sleeping.
now = time.monotonic


class CheckpointClock:
    """``due(step)``: True when ``minutes`` have passed since the last ``reset()``
    (``minutes`` 0 or None: never)."""

    def __init__(self, minutes: float | None, parallel: SingleProcess | None = None) -> None:
        self.seconds = 60.0 * minutes if minutes else 0.0
        self.parallel = parallel or SingleProcess()
        self.last = now()

    def reset(self) -> None:
        """A checkpoint was written or loaded: the interval starts again."""
        self.last = now()

    def due(self, step: int) -> bool:
        if not self.seconds:
            return False
        if self.parallel.world > 1 and step % CHECK_EVERY:  # same steps on every process: no agreement needed
            return False
        return self.parallel.any(now() - self.last >= self.seconds)
