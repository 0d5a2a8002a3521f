"""Are samples from the EMA generator at least as good as the raw G's, at equal steps?

For each seed, trains the default DCGAN on the bundled MNIST sample with
``trainer.ema_decay`` and scores, from the last checkpoint, by the judge's Fréchet
distance (``classifier_fid``, lower is better; the same N, real subset and seed for
all three):

* ``raw G``: the trained generator;
* ``EMA, G's statistics``: the averaged weights with the trained G's BatchNorm running
  statistics, which is what gantrain sampled from before it recomputed them;
* ``EMA, own statistics``: the averaged weights with statistics recomputed over fixed
  noise (gantrain/engine/ema.py), what gantrain samples, evaluates and exports now.

    python scripts/ema_bench.py                          # the numbers in README
    python scripts/ema_bench.py --steps 500 --seeds 0
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _checkout  # noqa: E402,F401  (the installed gantrain, else this checkout's)
import torch
from bench import compose_train  # noqa: E402

from gantrain.build import build_evaluator, build_nets, build_source, run  # noqa: E402
from gantrain.engine.checkpoint import last_checkpoint, load_checkpoint  # noqa: E402
from gantrain.engine.ema import recompute_batch_norm  # noqa: E402
from gantrain.models.gan import GAN  # noqa: E402


def generators(run_dir: Path) -> dict[str, torch.nn.Module]:
    """The three generators of the run's last checkpoint (see the module)."""
    from omegaconf import OmegaConf

    state = load_checkpoint(last_checkpoint(run_dir))
    model_cfg = OmegaConf.create(state["config"]).model
    make = lambda: build_nets(model_cfg, state["data_spec"])["generator"]  # noqa: E731
    raw, copied, own = make(), make(), make()
    G_state = {k[2:]: v for k, v in state["model"].items() if k.startswith("G.")}
    raw.load_state_dict(G_state)
    own.load_state_dict(state["ema"]["module"])  # saved with its own statistics
    averaged = {
        k: (G_state[k] if "running" in k or "num_batches" in k else v) for k, v in state["ema"]["module"].items()
    }
    copied.load_state_dict(averaged)
    # The saved statistics are the recomputed ones; check it, so the table means what it says.
    check = make()
    check.load_state_dict(averaged)
    calibration = GAN(check, torch.nn.Identity(), None, int(model_cfg.z_dim)).calibration_inputs
    recompute_batch_norm(check, calibration(torch.device("cpu")))
    for key, value in check.state_dict().items():
        assert torch.equal(value, own.state_dict()[key]), key
    return {"raw G": raw.eval(), "EMA, G's statistics": copied.eval(), "EMA, own statistics": own.eval()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--ema-decay", type=float, default=0.999)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "gantrain"))
    args = parser.parse_args()

    rows = []
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            overrides = [
                "device=cpu",
                "trainer.progress=false",
                f"trainer.steps={args.steps}",
                f"seed={seed}",
                f"trainer.ema_decay={args.ema_decay}",
                f"trainer.checkpoint_every={args.steps}",
                f"trainer.sample_every={args.steps}",
                "eval.metrics=[classifier]",
                f"eval.num_samples={args.num_samples}",
                f"eval.cache_dir={args.cache_dir}",
            ]
            start = time.perf_counter()
            cfg = compose_train(overrides)
            run(cfg, run_dir, overrides)
            minutes = (time.perf_counter() - start) / 60
            evaluator = build_evaluator(cfg, build_source(cfg), torch.device("cpu"))
            scores = {name: evaluator(G)["metrics"]["classifier_fid"] for name, G in generators(run_dir).items()}
            rows.append((seed, scores, minutes))
            print(
                f"seed {seed}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items()) + f" ({minutes:.1f} min)",
                flush=True,
            )
    names = list(rows[0][1])
    print(
        f"\nDCGAN, bundled MNIST sample, {args.steps} steps, EMA decay {args.ema_decay}; judge FD at "
        f"N = {args.num_samples} (lower is better)\n"
    )
    print("| seed | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for seed, scores, _ in rows:
        print(f"| {seed} | " + " | ".join(f"{scores[n]:.2f}" for n in names) + " |")


if __name__ == "__main__":
    main()
