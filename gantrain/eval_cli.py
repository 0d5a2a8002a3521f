"""``gantrain-eval RUN_DIR``: sample-quality metrics of a trained run's generator.

Reads the run's exported generator (``checkpoints/generator.pt``: the EMA weights when
the run kept an EMA) and its saved config, rebuilds its dataset, and scores N samples
against N real training images (plus the real-vs-real floor). The report goes to
``RUN_DIR/eval/step_<N>.json``, to TensorBoard (``eval/*``), and to the terminal.
Options override the run's ``eval`` settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROG = "gantrain-eval"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a gantrain run directory")
    parser.add_argument(
        "--num-samples", type=int, help="N generated and N real images (default: the run's eval.num_samples)"
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        choices=["auto", "classifier", "inception"],
        help="metric families (default: the run's eval.metrics)",
    )
    parser.add_argument("--inception-weights", help="a local copy of the Inception weights")
    parser.add_argument("--cache-dir", help="where the judge classifiers are cached")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--seed", type=int, default=0, help="picks the noise and the real subset")
    return parser.parse_args(argv)


def run_eval(args: argparse.Namespace) -> dict:
    from omegaconf import OmegaConf

    from gantrain.build import build_source, evaluate_generator, load_generator
    from gantrain.engine.checkpoint import write_json
    from gantrain.engine.logger import RunLogger
    from gantrain.engine.runtime import select_device

    device = select_device(args.device)
    G, export = load_generator(args.run_dir, device)
    cfg = OmegaConf.create(export["config"])
    overrides = {
        "num_samples": args.num_samples,
        "metrics": args.metrics,
        "inception_weights": args.inception_weights,
        "cache_dir": args.cache_dir,
    }
    if "eval" not in cfg:  # runs from before evaluation existed
        cfg.eval = OmegaConf.create({})
    for key, value in overrides.items():
        if value is not None:
            cfg.eval[key] = value
    cfg.seed = args.seed
    # The model's own report: image GANs against real training images, translators
    # against the held-out targets.
    report = evaluate_generator(cfg, G, build_source(cfg), device, args.seed)
    report["step"] = export["step"]
    report["source"] = "ema" if export["ema"] else "G"
    write_json(Path(args.run_dir) / "eval" / f"step_{export['step']:08d}.json", report)
    logger = RunLogger(args.run_dir)
    logger.scalars({f"eval/{name}": value for name, value in report["metrics"].items()}, export["step"])
    logger.scalars({f"eval_floor/{name}": value for name, value in report["floor"].items()}, export["step"])
    logger.close()
    return report


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    from gantrain.errors import UserError

    try:
        report = run_eval(args)
    except UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    from gantrain.metrics.evaluate import protocol_lines

    print(
        f"{args.run_dir} at step {report['step']} ({report['source']} weights), N={report['protocol']['num_samples']}:"
    )
    for name, value in report["metrics"].items():
        floor = report["floor"].get(name)
        against = "judge on held-out real" if name == "class_accuracy" else "real vs real"
        print(f"  {name:18s} {value:10.4f}" + (f"   ({against}: {floor:.4f})" if floor is not None else ""))
    for line in protocol_lines(report["protocol"]):
        print(f"  protocol: {line}")
    print(json.dumps({"saved": str(Path(args.run_dir) / "eval" / f"step_{report['step']:08d}.json")}))


if __name__ == "__main__":
    main()
