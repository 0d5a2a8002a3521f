"""What every tool does with a trained run: open it, and write into a folder of its own.

``open_run`` rebuilds the generator (and, when a tool asks, the discriminator) from a
run directory or one of its checkpoint files, from the run's own saved config, loaded
with ``weights_only=True``; or from a folder ``gantrain-export --format safetensors`` wrote
(``trained.load_generator``: its ``config.json`` and weights, nothing unpickled), which holds
G alone: a tool that needs D or the dataset says so in one line, naming the run to use.
``ToolOutput`` is the tool's folder ``RUN/<tool>/<name>`` (``EXPORT/<tool>/<name>``):
created only when the tool first writes (so a refused command leaves nothing behind),
never reused (so nothing a user already has is overwritten), every file in it written
atomically (``atomic.py``: a killed tool leaves no half picture), and every picture saved
there is also logged to the run's TensorBoard under ``<tool>/<name>/...`` (not an export's).
``tool_main`` gives every tool the same error contract as ``gantrain``: a mistake is one
line ``<prog>: error: ...`` and exit status 2, and a half-written output folder is removed.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
from torch import nn

from gantrain.atomic import atomic_write
from gantrain.engine.checkpoint import CHECKPOINT_DIR, LAST, exported_generator, last_checkpoint, load_checkpoint
from gantrain.errors import UserError, one_line_errors
from gantrain.export.folder import is_export, read_config
from gantrain.models.base import GeneratorInfo

WEIGHTS = ("auto", "ema", "raw")
# Output folders created by the command now running: a failure removes them.
_opened: list[ToolOutput] = []


def _prefixed(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


@dataclass
class GeneratorRun:
    """A trained run's generator, its record (step, config, data_spec), and where it lives."""

    run_dir: Path
    G: nn.Module
    record: dict
    weights: str  # "ema" or "raw": which copy of G this is
    device: torch.device
    full_state_path: Path | None  # the checkpoint holding D too, when there is one
    exported: bool = False  # an exported folder: G, its config.json and card; no D, no data

    @property
    def spec(self) -> dict:
        return self.record["data_spec"]

    @property
    def config(self):
        from omegaconf import OmegaConf

        config = OmegaConf.create(self.record["config"])
        if self.exported:
            # No data node in an export: building its dataset (build_source) is one line saying so.
            config.data = {"_target_": f"{__name__}.no_dataset", "folder": str(self.run_dir)}
        return config

    @property
    def model_name(self) -> str:
        return str(self.config.model.get("_target_", "?")).rsplit(".", 1)[-1]

    @property
    def info(self) -> GeneratorInfo:
        """What G maps (the model's contract: noise and classes, or images)."""
        from gantrain.build import generator_info

        return generator_info(self.config.model, self.spec)

    @property
    def is_translation(self) -> bool:
        return self.info.kind == "translator"

    @property
    def z_dim(self) -> int:
        return self.info.z_dim

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    def translator(self, direction: str, seed: int = 0):
        """``images -> images`` in ``direction`` as the run's model runs G at test time."""
        from gantrain.trained import translator

        if direction not in self.info.directions:
            raise UserError(
                f"{self.run_dir} holds a {self.model_name} translator, which translates "
                f"{' and '.join(self.info.directions)} only: use --direction "
                f"{self.info.directions[0]}"
            )
        return translator(self.config.model, self.G, direction, seed)

    @property
    def step(self) -> int:
        return int(self.record["step"])

    def require_noise(self, prog: str) -> None:
        """Tools that sample z refuse translation models, naming what does apply."""
        if self.is_translation:
            raise UserError(
                f"{prog} works on noise-to-image generators (gan, dcgan, cgan, wgan-gp); "
                f"{self.run_dir} holds a {self.model_name} translator: use "
                f"gantrain-generate {self.run_dir} --inputs <folder> to translate images"
            )

    def require_translation(self, prog: str) -> None:
        if not self.is_translation:
            raise UserError(
                f"{prog} --inputs translates images with pix2pix or CycleGAN; {self.run_dir} "
                f"holds a {self.model_name} noise generator: leave out --inputs"
            )

    def discriminator(self) -> nn.Module:
        """D as it was at the run's last checkpoint, in eval mode."""
        if self.exported:
            raise UserError(
                f"this needs the discriminator, which the exported folder {self.run_dir} does not hold: "
                f"point at the run directory it was exported from ({self.record['export'].get('source', 'RUN')})"
            )
        if self.full_state_path is None:
            raise UserError(
                f"this needs the discriminator, which {exported_generator(self.run_dir).name} "
                f"does not hold: point at the run directory (or checkpoints/{LAST})"
            )
        from gantrain.build import build_nets

        state = load_checkpoint(self.full_state_path, map_location=self.device)
        D = build_nets(self.config.model, self.spec)["discriminator"]
        D.load_state_dict(_prefixed(state["model"], "D."))
        return D.to(self.device).eval().requires_grad_(False)


def no_dataset(folder: str):
    """The data node of an exported folder's config: it holds no dataset (a ``_target_``)."""
    source = read_config(folder).get("source", "RUN")
    raise UserError(
        f"this needs the training data, which the exported folder {folder} does not hold: point at "
        f"the run directory it was exported from ({source})"
    )


def _open_export(path: Path, device: torch.device, weights: str) -> GeneratorRun:
    """A folder of ``gantrain-export --format safetensors``: G rebuilt from it alone."""
    from gantrain.trained import load_generator

    G, record = load_generator(path, device)
    held = record["export"]["weights"]
    if weights not in ("auto", held):
        raise UserError(
            f"{path} holds the {'EMA' if held == 'ema' else 'raw'} weights only: leave out --weights, or export "
            f"the run again with gantrain-export RUN --weights {weights}"
        )
    return GeneratorRun(path, G.requires_grad_(False), record, held, device, None, exported=True)


def _run_dir_of(path: Path) -> Path:
    return path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent


def open_run(path: str | Path, device: torch.device | str = "cpu", weights: str = "auto") -> GeneratorRun:
    """``path``: a run directory, or a checkpoint in it (``generator.pt``, ``last.pt``, ``best.pt``),
    or a folder of ``gantrain-export --format safetensors`` (or a file in it).
    ``weights``: ``ema`` (the averaged G; an error when the run kept none), ``raw`` (the
    trained G itself), ``auto`` (EMA when there is one)."""
    from gantrain.build import build_nets

    if weights not in WEIGHTS:
        raise UserError(f"--weights {weights} is not known: use one of {', '.join(WEIGHTS)}")
    device = torch.device(device)
    path = Path(path).expanduser()
    if path.is_file() and is_export(path.parent):
        path = path.parent  # generator.safetensors: its folder
    if path.is_dir() and is_export(path):
        return _open_export(path, device, weights)
    if path.is_dir():
        run_dir, generator_path, full_path = path, exported_generator(path), last_checkpoint(path)
    elif path.is_file():
        run_dir, generator_path, full_path = _run_dir_of(path), None, path
    else:
        raise UserError(f"{path}: no such run directory or checkpoint file")
    if generator_path is not None and not generator_path.is_file() and not full_path.is_file():
        raise UserError(
            f"{run_dir} holds no trained generator (no {CHECKPOINT_DIR}/{generator_path.name}): "
            f"point at a gantrain run directory that has saved a checkpoint"
        )
    # The exported generator is what sampling uses by default; the full state has both copies.
    use_export = generator_path is not None and generator_path.is_file() and weights in ("auto", "ema")
    state = load_checkpoint(generator_path if use_export else full_path, map_location=device)
    if "generator" in state:  # an export: one copy of G; D only in the run's last.pt
        has_ema = bool(state.get("ema"))
        if weights == "ema" and not has_ema:
            raise UserError(f"{run_dir} kept no EMA of the generator (trainer.ema_decay was 0): use --weights raw")
        G_state, chosen = state["generator"], "ema" if has_ema else "raw"
        full_path = last_checkpoint(run_dir) if last_checkpoint(run_dir).is_file() else None
    elif "model" in state:  # the full training state
        has_ema = "ema" in state
        if weights == "ema" and not has_ema:
            raise UserError(f"{path} kept no EMA of the generator (trainer.ema_decay was 0): use --weights raw")
        chosen = "ema" if has_ema and weights != "raw" else "raw"
        G_state = state["ema"]["module"] if chosen == "ema" else _prefixed(state["model"], "G.")
    else:
        raise UserError(f"{path} holds no generator: point at a run directory or one of its checkpoints")
    from omegaconf import OmegaConf

    G = build_nets(OmegaConf.create(state["config"]).model, state["data_spec"])["generator"]
    G.load_state_dict(G_state)
    G = G.to(device).eval().requires_grad_(False)
    return GeneratorRun(run_dir, G, state, chosen, device, full_path)


def check_class(run: GeneratorRun, label: int | None, prog: str) -> None:
    if label is None:
        return
    if not run.num_classes:
        raise UserError(
            f"{prog}: a class was given but {run.run_dir} holds an unconditional generator: leave out the class options"
        )
    if not 0 <= label < run.num_classes:
        raise UserError(f"class {label} is out of range: {run.run_dir} has classes 0..{run.num_classes - 1}")


class ToolOutput:
    """``RUN/<tool>/<name>``: the tool's own folder, created on first write, never reused."""

    def __init__(self, run: GeneratorRun, tool: str, name: str | None = None) -> None:
        self.run, self.tool = run, tool
        base = run.run_dir / tool
        if name is None:
            stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
            name, k = stamp, 1
            while (base / name).exists():
                name, k = f"{stamp}_{k}", k + 1
        elif not name or "/" in name or name in (".", ".."):
            raise UserError(f"--name {name!r}: use a plain folder name")
        elif (base / name).exists():
            raise UserError(f"{base / name} already exists: choose another --name (nothing is overwritten)")
        self.name, self.path = name, base / name
        self._logger = None

    def file(self, name: str) -> Path:
        """A path in the folder, creating the folder first."""
        if not self.path.is_dir():
            self.path.mkdir(parents=True)
            _opened.append(self)
        return self.path / name

    @property
    def logger(self):
        if self._logger is None:
            from gantrain.engine.logger import RunLogger

            self._logger = RunLogger(self.run.run_dir)
        return self._logger

    def grid(self, name: str, images: torch.Tensor, nrow: int) -> Path:
        """Images in [-1, 1] as one grid PNG, also logged to TensorBoard."""
        from torchvision.utils import make_grid, save_image  # here: `--help` and bad input need no torchvision

        grid = make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))
        path = self.file(f"{name}.png")
        atomic_write(path, lambda f: save_image(grid, f, format="png"))
        if not self.run.exported:  # an exported folder gets no TensorBoard log of its own
            self.logger.writer.add_image(f"{self.tool}/{self.name}/{name}", grid, self.run.step)
        return path

    def images(self, images: torch.Tensor, names: list[str]) -> list[Path]:
        """One PNG per image (in [-1, 1])."""
        from torchvision.utils import save_image

        paths = [self.file(f"{name}.png") for name in names]
        for image, path in zip(images.detach().float().cpu(), paths):
            atomic_write(
                path, lambda f, image=image: save_image(image, f, format="png", normalize=True, value_range=(-1, 1))
            )
        return paths

    def table(self, name: str, rows: list[dict]) -> Path:
        path = self.file(f"{name}.csv")
        buffer = io.StringIO(newline="")  # csv's own line ends, untranslated
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(path, lambda f: f.write(buffer.getvalue().encode()))
        return path

    def tensor(self, name: str, value) -> Path:
        path = self.file(f"{name}.pt")
        atomic_write(path, lambda f: torch.save(value, f))
        return path

    def json(self, name: str, data: dict) -> Path:
        from gantrain.engine.checkpoint import write_json

        path = self.file(f"{name}.json")
        write_json(path, data)
        return path

    def close(self) -> None:
        if self._logger is not None:
            self._logger.close()

    def discard(self) -> None:
        """After a failure: remove what this command wrote, and nothing else."""
        self.close()
        if self.path.is_dir():
            shutil.rmtree(self.path, ignore_errors=True)
        if self.path.parent.is_dir() and not any(self.path.parent.iterdir()):
            self.path.parent.rmdir()


def tool_main(
    prog: str,
    parse: Callable[[list[str]], argparse.Namespace],
    run: Callable[[argparse.Namespace], ToolOutput | None],
    argv: list[str] | None = None,
) -> None:
    """A tool's ``main``: parse ``argv`` (default: the command line) and run it with the
    CLI's error contract: a ``UserError`` is one line and exit status 2, and whatever the
    failed command had written is removed."""
    args = parse(sys.argv[1:] if argv is None else argv)
    _opened.clear()
    with one_line_errors(prog):
        try:
            output = run(args)
        except BaseException:
            for opened in _opened:
                opened.discard()
            raise
    if output is not None:
        output.close()
        print(f"{prog}: wrote {output.path}")
