"""One process of a data-parallel run, as torchrun starts it, for test_distributed.py:
train through build_trainer, then save this process's weights to OUT/rank<N>.pt so the
test can compare the processes (rank 0's checkpoint alone would not show a drift).
Rank 0 also evaluates every 2 steps with a slow stand-in for the metrics (the real
judge trains for minutes), while the other process trains on to its next collective.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_worker.py OUT RUN_DIR override...

With FAIL_COMPILE_ON_RANK=R in the environment, torch.compile fails on process R alone,
in the generator's update (after D's gradients were averaged): the late, one-sided
failure that must not leave the processes' collectives out of step. With
SLOW_DATA_SECONDS=S and COLLECTIVE_TIMEOUT_SECONDS=T, building the data takes S more
seconds on each node's first process, and the collectives time out after T.
"""

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cli_worker import backend_threads  # noqa: E402
from conftest import compose_config  # noqa: E402

from gantrain import build as build_module  # noqa: E402
from gantrain.build import build_trainer  # noqa: E402
from gantrain.data import cache as cache_module  # noqa: E402
from gantrain.engine import distributed  # noqa: E402
from gantrain.engine import speed as speed_module  # noqa: E402


class SlowEvaluator:
    """Scores a generator by its mean output, after keeping rank 0 busy for a while."""

    every, best = 2, "mean_output"

    def __call__(self, generator) -> dict:
        time.sleep(1.0)
        with torch.no_grad():
            value = float(generator(torch.randn(4, generator.z_dim)).mean())
        return {"metrics": {"mean_output": value}, "floor": {}}

    def is_better(self, value: float, best: float | None) -> bool:
        return best is None or value < best


def main() -> None:
    out, run_dir, overrides = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    torch.set_num_threads(1)
    if "COLLECTIVE_TIMEOUT_SECONDS" in os.environ:
        distributed.TIMEOUT = timedelta(seconds=float(os.environ["COLLECTIVE_TIMEOUT_SECONDS"]))
    parallel = distributed.start()
    if "SLOW_DATA_SECONDS" in os.environ and parallel.local_rank == 0:
        build_source = build_module.build_source

        def slow_build_source(cfg):
            time.sleep(float(os.environ["SLOW_DATA_SECONDS"]))
            return build_source(cfg)

        build_module.build_source = slow_build_source
    trainers = []
    if os.environ.get("FAIL_COMPILE_ON_RANK") == str(parallel.rank):

        def backend(graph_module, example_inputs):
            if not any(p.requires_grad for p in trainers[0].model.D.parameters()):
                raise RuntimeError(f"no compiler on rank {parallel.rank}")
            return graph_module.forward
    else:

        def backend(graph_module, example_inputs):
            return graph_module.forward

    speed_module.COMPILE_BACKEND = backend
    builds = []  # data caches this process decoded
    build_cache = cache_module._build
    cache_module._build = lambda *args: (builds.append(1), build_cache(*args))[1]
    trainer = build_trainer(compose_config(overrides), run_dir, overrides)
    trainers.append(trainer)
    trainer.eval_every = SlowEvaluator.every
    if parallel.is_main:
        trainer.evaluator = SlowEvaluator()
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    first = next(iter(trainer.stream))["image"]  # this process's first batch (a copy of the stream)
    trainer.stream.load_state_dict({"epoch": 0, "batch": 0})
    trainer.fit()
    trainer.logger.close()
    torch.save(
        {
            "initial": initial,
            "final": trainer.model.state_dict(),
            "first_batch": first,
            "images_seen": trainer.images_seen,
            "cache_builds": len(builds),
        },
        out / f"rank{parallel.rank}.pt",
    )
    distributed.stop()  # the trainer still holds the context: its groups must go all the same
    left = backend_threads()
    assert not left, f"threads of destroyed process groups still running: {left}"


if __name__ == "__main__":
    main()
