"""TensorBoard logging, plus the sample grids as PNG files in the run directory (written atomically:
``atomic.py``). TensorBoard's event files are appended to, record by record; its reader ignores a
last record cut short by a crash (a resumed run starts a new event file)."""

from __future__ import annotations

from pathlib import Path

import torch

from gantrain.atomic import atomic_write


class RunLogger:
    def __init__(self, run_dir: str | Path, purge_step: int | None = None) -> None:
        # Imported here, not at the top: a config error on the way to a run must not pay for
        # tensorboard, nor torchvision (whose import pulls in torch._dynamo, seconds on a CPU).
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.samples_dir = self.run_dir / "samples"
        # purge_step: on resume, TensorBoard hides events past the checkpoint's step
        # that the interrupted run logged before it died.
        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tb"), purge_step=purge_step)
        self.scalar_tags: set[str] = set()  # what this process logged, for the HParams metrics

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.scalar_tags.update(values)

    def hparams(self, hparams: dict[str, float | int | str | bool], metric_tags: list[str]) -> None:
        """The run's hyperparameters for TensorBoard's HParams tab, written into the run's
        own event file (``add_hparams`` would start a second run folder). The tab shows,
        for each tag in ``metric_tags``, the last value the run logged under it."""
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        experiment, session_start, session_end = hparams_summary(hparams, {tag: 0.0 for tag in metric_tags})
        for proto in (experiment, session_start, session_end):
            self.writer.file_writer.add_summary(proto)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self.writer.add_text(tag, text, step)

    def table(self, tag: str, rows: dict[str, str], step: int = 0) -> None:
        lines = ["| key | value |", "|---|---|"] + [f"| {k} | `{v}` |" for k, v in rows.items()]
        self.text(tag, "\n".join(lines), step)

    def images(self, tag: str, images: torch.Tensor, step: int, nrow: int) -> Path:
        """Log images in [-1, 1] as one grid; also save it as samples/<tag>_<step>.png."""
        from torchvision.utils import make_grid, save_image

        grid = make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))
        self.writer.add_image(tag, grid, step)
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        path = self.samples_dir / f"{tag.replace('/', '_')}_{step:08d}.png"
        # Atomically: a run killed while writing it leaves the old grid or the new one.
        atomic_write(path, lambda f: save_image(grid, f, format="png"))
        return path

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class SilentLogger(RunLogger):
    """The logger of data-parallel processes other than rank 0: it writes nothing
    (rank 0 logs the values averaged over all processes)."""

    def __init__(self, run_dir: str | Path) -> None:  # no SummaryWriter, no event file
        self.run_dir = Path(run_dir)
        self.samples_dir = self.run_dir / "samples"
        self.scalar_tags = set()

    def scalars(self, values: dict[str, float], step: int) -> None:
        pass

    def hparams(self, hparams: dict, metric_tags: list[str]) -> None:
        pass

    def text(self, tag: str, text: str, step: int = 0) -> None:
        pass

    def images(self, tag: str, images: torch.Tensor, step: int, nrow: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass
