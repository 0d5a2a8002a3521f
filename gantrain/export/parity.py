"""The parity check: the exported model against PyTorch, on fixed inputs.

The reference is gantrain's own test-time path, not the exported graph's source: a noise
G in eval mode (``models/common.eval_forward``), a translator through
``test_time.translate`` in the run's ``test_mode``. The inputs are seeded (z from
``torch.Generator`` seeds, labels cycling through the classes, images uniform in
[-1, 1]) at ``BATCHES`` sizes, so a graph that froze the batch size, or normalised across
the batch, fails. The number reported is max |exported - reference| over every output
value of every batch.

What is compared when dropout is on at test time (pix2pix's ``test_mode: train``):
safetensors is PyTorch on both sides, so the two draw the same masks from the same seed
and the whole behaviour is compared. ONNX and TorchScript draw their masks from their own
runtime's generator, so no two outputs can be compared value by value; the check then
compares a twin of the exported graph without dropout (written and run the same way,
then deleted) with the reference without dropout, and runs the shipped file twice on the
same input to see that its outputs differ (its dropout is live, not removed by the runtime).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

from gantrain.export.formats import Runner, load_graph, write_graph
from gantrain.export.graph import as_graph, has_dropout
from gantrain.models.common import eval_forward
from gantrain.test_time import translate

BATCHES = (1, 5)
SEED = 0
DROPOUT_SEED = 0  # the masks of the reference (and of a reloaded safetensors G)


def fixed_inputs(kind: str, shape: dict, n: int, seed: int = SEED) -> tuple[torch.Tensor, ...]:
    """``n`` seeded inputs: ``(z, label)`` / ``(z,)`` for a noise G, ``(image,)`` for a translator."""
    generator = torch.Generator().manual_seed(seed + n)
    if kind == "translator":
        c, h, w = shape["image_shape"]
        return (torch.rand(n, c, h, w, generator=generator) * 2 - 1,)
    z = torch.randn(n, shape["z_dim"], generator=generator)
    if shape["num_classes"]:
        return z, torch.arange(n, dtype=torch.int64) % shape["num_classes"]
    return (z,)


@contextlib.contextmanager
def without_dropout(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` with every dropout's p at 0 (F.dropout then multiplies by exactly 1), restored after."""
    layers = [m for m in net.modules() if isinstance(m, nn.Dropout)]
    kept = [m.p for m in layers]
    for m in layers:
        m.p = 0.0
    try:
        yield net
    finally:
        for m, p in zip(layers, kept):
            m.p = p


def reference(net: nn.Module, kind: str, test_mode: str | None, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """What gantrain itself makes of ``inputs`` with ``net`` (one direction's G) at test time."""
    if kind == "noise":
        with torch.no_grad():
            return eval_forward(net, *inputs)
    return translate(net, inputs[0], test_mode or "train", seed=DROPOUT_SEED)


def max_difference(run: Runner | Callable, expected: Callable, shape: dict, kind: str) -> float:
    """max |run(x) - expected(x)| over the fixed inputs of every size in ``BATCHES``."""
    worst = 0.0
    for n in BATCHES:
        inputs = fixed_inputs(kind, shape, n)
        got, want = run(*inputs), expected(*inputs)
        if tuple(got.shape) != tuple(want.shape):
            return float("inf")  # e.g. a batch size frozen into the graph
        diff = (got.float() - want.float()).abs().max().item()
        worst = max(worst, diff if diff == diff else float("inf"))  # NaN: fails the check
    return worst


def graph_parity(
    fmt: str, net: nn.Module, kind: str, test_mode: str | None, shape: dict, path: Path, names: list[str], out: str
) -> dict:
    """Parity of the ``fmt`` file at ``path`` holding ``net`` (see the module docstring)."""
    conditional = bool(shape["num_classes"])
    live = kind == "translator" and test_mode == "train" and has_dropout(net)
    if not live:
        diff = max_difference(load_graph(fmt, path, names), lambda *x: reference(net, kind, test_mode, x), shape, kind)
        return {"max_abs_diff": diff, "compared": "the exported file with PyTorch", "batches": list(BATCHES)}
    with tempfile.TemporaryDirectory() as tmp, without_dropout(net):
        twin = Path(tmp) / path.name
        inputs = fixed_inputs(kind, shape, 2)
        write_graph(fmt, as_graph(net, kind, test_mode, conditional, dropout=False), inputs, names, out, twin)
        diff = max_difference(load_graph(fmt, twin, names), lambda *x: reference(net, kind, test_mode, x), shape, kind)
    shipped = load_graph(fmt, path, names)
    x = fixed_inputs(kind, shape, 2)
    first, second = shipped(*x), shipped(*x)
    spread = (first - second).abs().max().item()
    return {
        "max_abs_diff": diff,
        "compared": "the same graph without dropout, with PyTorch without dropout (the masks are random in "
        "every runtime)",
        "batches": list(BATCHES),
        "dropout_live": spread > 0 and bool(torch.isfinite(first).all()),
        "dropout_spread": spread,
    }


def weights_parity(G: nn.Module, loaded: nn.Module, kind: str, test_mode: str | None, shape: dict, direction=None):
    """Parity of a G rebuilt from a safetensors folder with the G it was written from."""
    pick = (lambda g: g[direction]) if direction else (lambda g: g)
    diff = max_difference(
        lambda *x: reference(pick(loaded), kind, test_mode, x),
        lambda *x: reference(pick(G), kind, test_mode, x),
        shape,
        kind,
    )
    what = "G rebuilt from the folder alone (gantrain.load_generator) with the run's G"
    return {"max_abs_diff": diff, "compared": what + (", dropout masks from one seed" if kind == "translator" else "")}
