"""Writing a generator in each format, and running what was written.

* ``safetensors``: G's state dict as raw tensors (no pickle, no code); rebuilt by
  ``gantrain.load_generator`` from ``config.json``.
* ``onnx``: the test-time graph (``graph.py``) through ``torch.onnx.export`` with the
  ``torch.export`` front end (the TorchScript-based one is deprecated), one file with its
  weights inside, a dynamic batch dimension shared by every input; run by onnxruntime.
* ``torchscript``: the same graph traced by ``torch.jit.trace`` (batch sizes stay dynamic:
  the nets read them from their inputs' shapes), run by ``torch.jit.load``.

Inputs: a noise G takes ``z`` (float32, N x z_dim) and, when conditional, ``label``
(int64, N); a translator takes ``image`` (float32, N x C x H x W in [-1, 1]). The output
is ``image`` / ``translated``, in [-1, 1].
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gantrain.errors import UserError
from gantrain.export.folder import EXTRA_HINT

Runner = Callable[..., torch.Tensor]


def require(fmt: str) -> None:
    """The optional packages of ``fmt``, or one line naming the extra that installs them."""
    needed = {"safetensors": ["safetensors"], "onnx": ["onnx", "onnxruntime", "onnxscript"], "torchscript": []}[fmt]
    for module in needed:
        try:
            __import__(module)
        except ImportError:
            raise UserError(
                f"--format {fmt} needs the {module} package, which is not installed: {EXTRA_HINT}"
            ) from None


def input_names(kind: str, conditional: bool) -> list[str]:
    if kind == "translator":
        return ["image"]
    return ["z", "label"] if conditional else ["z"]


def output_name(kind: str) -> str:
    return "translated" if kind == "translator" else "image"


def write_safetensors(G: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    # Each tensor its own contiguous copy: safetensors refuses views and shared storage.
    state = {k: v.detach().cpu().contiguous().clone() for k, v in G.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", "producer": "gantrain-export"})


@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines and their warnings about the choices made here (a
    graph with random nodes, traced on purpose; the deprecation of torch.jit) stay out of
    the user's terminal: what matters is the parity check that follows."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def write_graph(fmt: str, graph: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], out: str, path: Path):
    """``graph`` (``graph.py``) exported to ``path`` in ``fmt`` ("onnx" or "torchscript")."""
    try:
        with _quiet(), torch.no_grad():
            if fmt == "torchscript":
                traced = torch.jit.trace(graph, inputs, check_trace=False)
                traced.save(str(path))
                return
            batch = torch.export.Dim("batch")
            torch.onnx.export(
                graph,
                inputs,
                str(path),
                input_names=names,
                output_names=[out],
                dynamo=True,
                external_data=False,  # one self-contained file (fine below ONNX's 2 GB protobuf limit)
                dynamic_shapes=tuple({0: batch} for _ in inputs),
                verbose=False,
            )
    except UserError:
        raise
    except Exception as exc:
        reason = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise UserError(f"the {fmt} exporter failed on this generator ({reason}): try another --format") from None


def load_graph(fmt: str, path: Path, names: list[str]) -> Runner:
    """A function running the file at ``path`` on torch tensors (on the CPU)."""
    if fmt == "torchscript":
        with _quiet():
            module = torch.jit.load(str(path), map_location="cpu")

        def run_script(*inputs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(*inputs)

        return run_script
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run_onnx(*inputs: torch.Tensor) -> torch.Tensor:
        feed = {name: x.detach().cpu().numpy() for name, x in zip(names, inputs)}
        return torch.from_numpy(session.run(None, feed)[0])

    return run_onnx
