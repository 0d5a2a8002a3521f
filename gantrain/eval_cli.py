"""``gantrain-eval``: sample-quality metrics of a trained run's generator, or of any image folder.

* ``gantrain-eval RUN_DIR``: reads the run's exported generator (``checkpoints/generator.pt``:
  the EMA weights when the run kept an EMA) and its saved config, rebuilds its dataset, and
  scores N samples against N real training images (plus the real-vs-real floor). The report
  goes to ``RUN_DIR/eval/step_<N>.json``, to TensorBoard (``eval/*``), and to the terminal.
  Options override the run's ``eval`` settings.
* ``gantrain-eval RUN_DIR --real DIR``: the same samples against the images of a folder (2N of
  them: the floor comes from the folder). The run's own records are left alone: the report is
  printed, and written to ``--out`` when given.
* ``gantrain-eval --real DIR --fake DIR``: N images of one folder against 2N of another, with
  the metrics and protocol of runs (``metrics/folders.py``); printed, and written to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROG = "gantrain-eval"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", help="a gantrain run directory")
    parser.add_argument("--real", help="a folder of real images: scored against instead of the run's data")
    parser.add_argument("--fake", help="a folder of generated images, scored against --real (no run)")
    parser.add_argument("--out", type=Path, help="also write the report to this JSON file")
    parser.add_argument(
        "--image-size", type=int, default=0, help="folders only: the size both are read at (default: the real images')"
    )
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


# Folder mode: the bare option names of the metrics layer, as this command's flags.
FLAGS = {
    "real": "--real",
    "fake": "--fake",
    "image_size": "--image-size",
    "num_samples": "--num-samples",
    "metrics": "--metrics",
    "inception_weights": "--inception-weights",
    "cache_dir": "--cache-dir",
    "best": "best",
    "every": "every",
    "batch_size": "batch_size",
}


def check_args(args: argparse.Namespace) -> None:
    from gantrain.errors import UserError

    if args.fake is not None and args.run_dir is not None:
        raise UserError("--fake scores a folder in place of a run's generator: give RUN_DIR or --fake, not both")
    if args.fake is not None and args.real is None:
        raise UserError("--fake DIR needs --real DIR, the folder to score it against")
    if args.run_dir is None and args.fake is None:
        raise UserError("give a run directory (RUN_DIR [--real DIR]) or two folders (--real DIR --fake DIR)")


def eval_folders(args: argparse.Namespace) -> dict:
    """``--real DIR --fake DIR``."""
    import os

    from gantrain.engine.runtime import select_device
    from gantrain.errors import keyed
    from gantrain.metrics.evaluate import EvalConfig
    from gantrain.metrics.folders import evaluate_folders

    cache = args.cache_dir or os.environ.get("GANTRAIN_CACHE") or str(Path.home() / ".cache" / "gantrain")
    settings = {"num_samples": args.num_samples, "metrics": args.metrics, "inception_weights": args.inception_weights}
    with keyed("", FLAGS):
        cfg = EvalConfig(cache_dir=cache, **{key: value for key, value in settings.items() if value is not None})
        return evaluate_folders(args.real, args.fake, cfg, select_device(args.device), args.seed, args.image_size)


def eval_run_on_folder(args: argparse.Namespace, G, export: dict, cfg, device) -> dict:
    """``RUN_DIR --real DIR``: the run's generator, its ``eval`` settings, the folder's images."""
    from gantrain.build import as_spec, generator_info
    from gantrain.config_check import plain
    from gantrain.errors import UserError, keyed
    from gantrain.metrics.evaluate import EvalConfig
    from gantrain.metrics.folders import evaluate_generator_on_folder
    from gantrain.validate import to_dataclass

    spec = export["data_spec"]
    info = generator_info(cfg.model, spec)
    if info.kind != "noise":
        raise UserError(f"--real scores a noise-to-image generator; {args.run_dir} holds an image translator")
    eval_cfg = to_dataclass(EvalConfig, plain(cfg.eval), "eval")
    G.eval()

    def sample(z, y):
        return G(z, y) if info.num_classes else G(z)

    # The run's settings keep their key paths (eval.num_samples), the folder its flag.
    with keyed("eval", {"real": "--real"}):
        return evaluate_generator_on_folder(
            sample, info.z_dim, info.num_classes, as_spec(spec), args.real, eval_cfg, device, args.seed
        )


def run_eval(args: argparse.Namespace) -> dict:
    check_args(args)
    if args.run_dir is None:
        report = eval_folders(args)
        _write_out(args, report)
        return report

    from omegaconf import OmegaConf

    from gantrain.build import build_source
    from gantrain.engine.checkpoint import write_json
    from gantrain.engine.logger import RunLogger
    from gantrain.engine.runtime import select_device
    from gantrain.errors import UserError
    from gantrain.trained import evaluate_generator, load_generator

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
    if args.real is not None:
        report = eval_run_on_folder(args, G, export, cfg, device)
        report["step"], report["source"] = export["step"], "ema" if export["ema"] else "G"
        _write_out(args, report)
        return report
    if "export" in export:  # an exported folder (gantrain-export) holds G alone, not the dataset
        raise UserError(
            f"{args.run_dir} is an exported generator, without the training data to score it "
            f"against: add --real DIR (a folder of real images), or evaluate the run it came from"
        )
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
    _write_out(args, report)
    return report


def _write_out(args: argparse.Namespace, report: dict) -> None:
    if args.out is not None:
        from gantrain.engine.checkpoint import write_json

        write_json(args.out, report)


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    from gantrain.errors import one_line_errors

    with one_line_errors(PROG):
        report = run_eval(args)
    from gantrain.metrics.evaluate import protocol_lines

    n = report["protocol"]["num_samples"]
    if args.run_dir is None:
        print(f"{args.fake} against {args.real}, N={n}:")
    else:
        against = f" against {args.real}" if args.real is not None else ""
        print(f"{args.run_dir} at step {report['step']} ({report['source']} weights){against}, N={n}:")
    for name, value in report["metrics"].items():
        floor = report["floor"].get(name)
        against = "judge on held-out real" if name == "class_accuracy" else "real vs real"
        print(f"  {name:18s} {value:10.4f}" + (f"   ({against}: {floor:.4f})" if floor is not None else ""))
    for line in protocol_lines(report["protocol"]):
        print(f"  protocol: {line}")
    saved = [] if args.run_dir is None or args.real is not None else [Path(args.run_dir) / "eval"]
    saved = [str(path / f"step_{report['step']:08d}.json") for path in saved] + ([str(args.out)] if args.out else [])
    if saved:
        print(json.dumps({"saved": saved[0] if len(saved) == 1 else saved}))


if __name__ == "__main__":
    main()
