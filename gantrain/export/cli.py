"""``gantrain-export RUN --format safetensors|onnx|torchscript``: the generator in a folder of its own.

Writes ``RUN/export/<format>`` (or ``--out DIR``): the weights, ``config.json`` (what
rebuilds G and what it maps: ``folder.py``), ``parity.json`` and a ``README.md`` model
card (``card.py``). G is the run's EMA copy when it kept one (``--weights``). A
translator is exported as the run's ``model.test_mode`` runs it (``graph.py``).

The folder is written under a temporary name beside its destination and renamed into
place only after the parity check passed (``parity.py``): a failed or killed export
leaves nothing at the destination, and an existing non-empty folder is never touched.
A mistake is one line ``gantrain-export: error: ...`` and exit status 2, as in ``gantrain``.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf

from gantrain import __version__
from gantrain.errors import UserError, one_line_errors
from gantrain.export.folder import CARD, CONFIG, EXPORT_VERSION, FORMATS, PARITY, weight_files

PROG = "gantrain-export"
DEFAULT_TOLERANCE = 1e-4  # float32 kernels of two runtimes differ by ~1e-6 on these nets


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a gantrain run directory (or a checkpoint in it, or a safetensors export)")
    parser.add_argument("--format", required=True, help="safetensors, onnx or torchscript")
    parser.add_argument("--out", type=Path, help="the folder to write (default: RUN/export/<format>); must not exist")
    parser.add_argument("--weights", default="auto", help="ema, raw, or auto: EMA when the run kept one (default)")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"the largest |exported - PyTorch| accepted (default {DEFAULT_TOLERANCE:g})",
    )
    return parser.parse_args(argv)


def describe_test_time(
    kind: str, fmt: str, test_mode: str | None, has_dropout: bool, has_batch_norm: bool
) -> str | None:
    """The card's words for how a translator behaves at test time."""
    if kind != "translator":
        return None
    if test_mode == "eval":
        return "eval mode (model.test_mode=eval): BatchNorm's running statistics, no dropout; deterministic."
    parts = ["as trained and as the paper tests (model.test_mode=train): each image is translated on its own"]
    if has_batch_norm:
        parts.append("normalised by its own statistics (BatchNorm in train mode on one image)")
    if has_dropout:
        parts.append("with dropout on, so outputs vary from call to call")
    text = ", ".join(parts) + "."
    if fmt == "safetensors":
        return text + (
            " The weights are stored as trained: gantrain's tools (and hubconf's `translator`) run G this way;"
            " calling G(x) yourself after `.eval()` uses running statistics and no dropout instead."
        )
    return text + " This is built into the graph: the runtime's train/eval setting does not change it."


def _export_config(run, fmt: str, files: dict[str, str], test_mode: str | None, card_test_time: str | None) -> dict:
    info, spec = run.info, run.spec
    size, channels = int(spec["image_size"]), int(spec["channels"])
    if info.kind == "noise":
        inputs = {"z": {"dtype": "float32", "shape": ["N", info.z_dim]}}
        if info.num_classes:
            inputs["label"] = {"dtype": "int64", "shape": ["N"], "values": f"0..{info.num_classes - 1}"}
    else:
        inputs = {"image": {"dtype": "float32", "shape": ["N", channels, size, size], "values": "[-1, 1]"}}
    return {
        "gantrain_export": EXPORT_VERSION,
        "gantrain_version": __version__,
        "torch_version": torch.__version__,
        "format": fmt,
        "files": files,
        "weights": run.weights,
        "step": run.step,
        "kind": info.kind,
        "z_dim": info.z_dim,
        "num_classes": info.num_classes,
        "class_names": list(spec.get("class_names") or []) if info.num_classes else [],
        "directions": list(info.directions),
        "image_shape": [channels, size, size],
        "value_range": [-1, 1],
        "test_mode": test_mode,
        "test_time": card_test_time,
        "inputs": inputs,
        "outputs": ["translated" if info.kind == "translator" else "image"],
        "model": OmegaConf.to_container(run.config.model, resolve=True),
        "data_spec": dict(spec),
        "source": str(run.run_dir),
    }


def _write(run, fmt: str, folder: Path, config: dict, tolerance: float) -> dict:
    """The weights and their parity checks, into ``folder`` (config.json already there)."""
    from gantrain.export.formats import input_names, output_name, write_graph, write_safetensors
    from gantrain.export.graph import as_graph
    from gantrain.export.parity import fixed_inputs, graph_parity, weights_parity

    kind, test_mode, shape = config["kind"], config["test_mode"], config
    checks = {}
    if fmt == "safetensors":
        from gantrain.trained import load_generator

        write_safetensors(run.G, folder / config["files"]["generator"])
        loaded, _ = load_generator(folder)
        for d in config["directions"] if len(config["directions"]) > 1 else [None]:
            name = config["files"]["generator"] + (f" ({d})" if d else "")
            checks[name] = weights_parity(run.G, loaded, kind, test_mode, shape, d)
    else:
        names, out = input_names(kind, bool(config["num_classes"])), output_name(kind)
        for key, file in config["files"].items():
            net = run.G[key] if isinstance(run.G, torch.nn.ModuleDict) else run.G
            graph = as_graph(net, kind, test_mode, bool(config["num_classes"]))
            write_graph(fmt, graph, fixed_inputs(kind, shape, 2), names, out, folder / file)
            checks[file] = graph_parity(fmt, net, kind, test_mode, shape, folder / file, names, out)
    for file, result in checks.items():
        diff = result["max_abs_diff"]
        print(f"{PROG}: parity of {file}: max |exported - PyTorch| = {diff:.3g} (tolerance {tolerance:g})")
        if not diff <= tolerance:
            raise UserError(
                f"parity check failed: {file} differs from PyTorch by {diff:.3g} (max |difference|), above "
                f"--tolerance {tolerance:g}; nothing was written"
            )
        if result.get("dropout_live") is False:
            raise UserError(f"{file} was exported without its test-time dropout: export with another --format")
    from gantrain.export.parity import BATCHES

    return {"tolerance": tolerance, "batches": list(BATCHES), "checks": checks}


def export(args: argparse.Namespace) -> Path:
    """Write the folder; returns where it is."""
    from gantrain.export.card import model_card
    from gantrain.export.formats import require
    from gantrain.export.graph import has_dropout
    from gantrain.tools.run import open_run

    fmt = args.format
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt} is not known: use one of {', '.join(FORMATS)}")
    if not (args.tolerance > 0 and math.isfinite(args.tolerance)):
        raise UserError(f"--tolerance {args.tolerance}: use a positive number, e.g. {DEFAULT_TOLERANCE:g}")
    require(fmt)
    run = open_run(args.run, "cpu", args.weights)
    out = (args.out or run.run_dir / "export" / fmt).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists: choose another --out (nothing is overwritten)")
    info = run.info
    test_mode = str(run.config.model.get("test_mode", "train")) if info.kind == "translator" else None
    words = describe_test_time(
        info.kind,
        fmt,
        test_mode,
        has_dropout(run.G),
        any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in run.G.modules()),
    )
    config = _export_config(run, fmt, weight_files(fmt, info.kind, info.directions), test_mode, words)
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (folder / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        parity = _write(run, fmt, folder, config, args.tolerance)
        (folder / PARITY).write_text(json.dumps(parity, indent=2) + "\n")
        source = None if (run.run_dir / CONFIG).is_file() else run.run_dir
        (folder / CARD).write_text(model_card(config, parity, source))
        if out.is_dir():
            out.rmdir()  # empty (checked above): the rename takes its place
        folder.rename(out)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        for path in made:  # the parents this command created, innermost first, if left empty
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        raise
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    with one_line_errors(PROG):
        out = export(args)
    print(f"{PROG}: wrote {out}")


if __name__ == "__main__":
    main()
