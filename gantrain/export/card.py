"""The exported folder's ``README.md``: a model card (Mitchell et al. 2019, "Model Cards
for Model Reporting") with what a user of the file needs: what G maps and how to call it,
what it was trained on and for how long, the command that trained it, its last
evaluation with the protocol behind the numbers, which weights (EMA or raw), the parity
check's result, and for translators how G behaves at test time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gantrain.export.folder import CONFIG, PARITY


def last_evaluation(run_dir: Path) -> dict | None:
    """The run's newest ``eval/step_*.json`` (written during training or by gantrain-eval)."""
    reports = sorted((run_dir / "eval").glob("step_*.json"))
    for path in reversed(reports):
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a damaged report: the one before it
    return None


def training_command(run_dir: Path) -> str | None:
    """``gantrain <overrides>`` from Hydra's record of the command line, when the run has one."""
    from gantrain.config import recorded_overrides

    overrides = recorded_overrides(run_dir / ".hydra")
    return None if overrides is None else "gantrain " + " ".join(overrides)


def _evaluation_lines(report: dict | None) -> list[str]:
    if report is None:
        return ["No evaluation was recorded for this run (`gantrain-eval RUN` writes one)."]
    from gantrain.metrics.evaluate import protocol_lines

    lines = [f"At step {report.get('step')} ({report.get('source', '?')} weights):", ""]
    lines += ["| metric | value | floor (real vs real) |", "|---|---|---|"]
    floor = report.get("floor", {})
    for name, value in report.get("metrics", {}).items():
        lines.append(f"| {name} | {value:.4f} | {'' if floor.get(name) is None else f'{floor[name]:.4f}'} |")
    protocol = report.get("protocol")
    if isinstance(protocol, dict):
        lines += ["", "Protocol: " + "; ".join(protocol_lines(protocol)) + "."]
    return lines


def _usage(config: dict[str, Any]) -> list[str]:
    fmt, files = config["format"], config["files"]
    noise = config["kind"] == "noise"
    call = "G(z, label)" if noise and config["num_classes"] else "G(z)" if noise else "G(image)"
    if fmt == "safetensors":
        return [
            "```python",
            "import gantrain",
            "G, record = gantrain.load_generator('this/folder')  # no pickle: config.json + safetensors",
            "# or: torch.hub.load('<gantrain checkout>', 'generator', source='local', path='this/folder')",
            "```",
            "",
            "`gantrain-generate`, `gantrain-walk`, `gantrain-invert`, ... take this folder where they take a run.",
        ]
    first = next(iter(files.values()))
    return ["```python", "import torch", f"G = torch.jit.load('{first}')", f"image = {call}", "```"]


def _onnx_usage(config: dict[str, Any], first: str) -> list[str]:
    feeds = ", ".join(f"'{name}': {name}" for name in config["inputs"])
    return [
        "```python",
        "import onnxruntime",
        f"session = onnxruntime.InferenceSession('{first}')",
        f"({config['outputs'][0]},) = session.run(None, {{{feeds}}})",
        "```",
    ]


def model_card(config: dict[str, Any], parity: dict, run_dir: Path | None) -> str:
    """The card's text."""
    spec, fmt = config["data_spec"], config["format"]
    kind = "noise -> image" if config["kind"] == "noise" else "image -> image translator"
    model = str(config["model"].get("_target_", "?")).rsplit(".", 1)[-1]
    if config["num_classes"] and model == "GAN":
        model = "conditional GAN"  # model=cgan: the GAN class with conditional=true
    c, h, w = config["image_shape"]
    weights = "the EMA (moving average) of G" if config["weights"] == "ema" else "G as trained (raw, no EMA)"
    classes = config["num_classes"]
    named = f", {classes} classes: {', '.join(map(str, config['class_names']))}" if classes else ""
    inputs = ", ".join(f"`{n}` {v['dtype']} {v['shape']}" for n, v in config["inputs"].items())
    low, high = config["value_range"]
    lines = [
        f"# {model} generator ({kind}), exported by gantrain",
        "",
        f"- **Format**: {fmt} ({', '.join(config['files'].values())}); `{CONFIG}` holds what rebuilds G.",
        f"- **Weights**: {weights}.",
        f"- **Data**: {spec.get('name')}, images {c}x{h}x{w}{named}.",
        f"- **Training steps**: {config['step']}.",
        f"- **Inputs**: {inputs}; the first dimension N is the batch, any size. **Output**: "
        f"`{config['outputs'][0]}` float32 [N, {c}, {h}, {w}], values in [{low}, {high}].",
    ]
    if config["kind"] == "noise":
        lines.append(f"- z is standard normal noise of {config['z_dim']} values per image.")
    else:
        files = config["files"]
        lines.append(
            "- **Directions**: "
            + ", ".join(f"{d}: {files.get(d, files.get('generator'))}" for d in config["directions"])
            + "."
        )
        lines.append(f"- **Test-time behaviour**: {config['test_time']}")
    command = training_command(run_dir) if run_dir is not None else None
    lines += ["", "## How it was trained", ""]
    lines.append(f"`{command}`" if command else "The training command was not recorded with the run.")
    if run_dir is not None:
        lines += ["", f"Exported from `{run_dir}`."]
    lines += ["", "## Last evaluation", "", *_evaluation_lines(last_evaluation(run_dir) if run_dir else None)]
    lines += ["", "## Parity check", ""]
    for name, result in parity["checks"].items():
        lines.append(
            f"- {name}: max |difference| {result['max_abs_diff']:.3g} (tolerance {parity['tolerance']:g}); "
            f"compared {result['compared']}, batches of {', '.join(map(str, parity['batches']))}."
            + (" Dropout is live in the file: two runs on one input differ." if result.get("dropout_live") else "")
        )
    lines += ["", f"Details in `{PARITY}`.", "", "## Loading", ""]
    lines += _onnx_usage(config, next(iter(config["files"].values()))) if fmt == "onnx" else _usage(config)
    return "\n".join(lines) + "\n"
