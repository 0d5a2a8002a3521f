"""The units of a generator layer, after GAN Dissection (Bau et al., "GAN Dissection:
Visualizing and Understanding Generative Adversarial Networks", ICLR 2019).

A *unit* is one channel of an intermediate feature map of G, preferably after its
activation (ReLU). As in the paper:

* a unit's map is upsampled (bilinear) to the image size and thresholded at a high
  quantile of all its upsampled values over a batch of samples (the paper's top 1%,
  ``quantile=0.99``): the binary mask is where the unit "fires";
* its causal effect is measured by switching it off (ablation: its channel set to 0)
  or on (boosting: its channel multiplied) through a forward hook, with the same z.

Here units are ranked by what switching each one off does to the image (mean
absolute pixel change), to D's score and, where a judge classifier applies, to the
class it sees. The paper ranks units by how well their masks match a segmenter's
object classes; gantrain has no segmenter, so the ranking is by effect instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.errors import UserError

# Activation modules: their outputs are the units proper (post-nonlinearity, as in the paper).
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.PReLU, nn.ReLU6)


@dataclass(frozen=True)
class Layer:
    """A module of G whose output is a feature map with more channels than the image."""

    name: str  # as in G.named_modules(), e.g. "net.5"
    kind: str  # the module's class, e.g. "ReLU"
    shape: tuple[int, int, int]  # (C, H, W) of one sample's output

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def is_activation(self) -> bool:
        return self.kind in {cls.__name__ for cls in ACTIVATIONS}


def generate(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    return G(z) if y is None else G(z, y)


def module_of(G: nn.Module, name: str) -> nn.Module:
    modules = dict(G.named_modules())
    if name not in modules:
        raise UserError(f"layer {name!r} is not a module of the generator")
    return modules[name]


@torch.no_grad()
def candidate_layers(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None, image_channels: int) -> list[Layer]:
    """G's modules whose output is (N, C, H, W) with C > the image's channels, in the
    order they run: found by one dry forward pass with a hook on every module."""
    found: list[Layer] = []
    handles = []

    def recorder(name: str, module: nn.Module):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[1] > image_channels:
                found.append(Layer(name, type(module).__name__, tuple(int(s) for s in output.shape[1:])))

        return hook

    for name, module in G.named_modules():
        if name:  # the root's output is the image
            handles.append(module.register_forward_hook(recorder(name, module)))
    try:
        generate(G, z, y)
    finally:
        for handle in handles:
            handle.remove()
    return list({layer.name: layer for layer in found}.values())  # a module run twice: listed once


def default_layer(layers: list[Layer]) -> Layer:
    """The middle activation layer (the earlier one of two middles): mid-level units are
    where the paper finds object parts; early ones are too coarse, late ones textures."""
    units = [layer for layer in layers if layer.is_activation] or layers
    return units[(len(units) - 1) // 2]


def check_units(units: list[int], layer: Layer, option: str) -> None:
    for unit in units:
        if not 0 <= unit < layer.channels:
            raise UserError(
                f"{option}: unit {unit} is out of range: layer {layer.name} has {layer.channels} "
                f"channels (units 0..{layer.channels - 1})"
            )


def unit_scale(channels: int, ablate: list[int] = (), boost: dict[int, float] | None = None) -> torch.Tensor:
    """The factor of each channel: 0 for ablated units, the factor for boosted ones, else 1."""
    scale = torch.ones(channels)
    for unit in ablate:
        scale[unit] = 0.0
    for unit, factor in (boost or {}).items():
        scale[unit] = float(factor)
    return scale


def _apply(output: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """``output`` (N, C, ...) times ``factors``: (C,) for every sample, or (N, C). A new
    tensor, never written in place: an inplace ReLU shares its output with the module
    before it, so writing into it would change what that module returned."""
    factors = factors.to(output.device, output.dtype)
    factors = factors.view(1, -1) if factors.dim() == 1 else factors
    return output * factors.view(*factors.shape, *[1] * (output.dim() - 2))


@contextmanager
def scaled(G: nn.Module, layer: str, scale: torch.Tensor) -> Iterator[None]:
    """Inside the block, ``layer``'s output is multiplied channel-wise by ``scale``: (C,)
    for every sample, or (N, C), one row per sample."""
    handle = module_of(G, layer).register_forward_hook(lambda _m, _i, output: _apply(output, scale))
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def intervene(
    G: nn.Module, layer: str, ablate: list[int] = (), boost: dict[int, float] | None = None
) -> Iterator[None]:
    """Inside the block, G runs with the ``ablate`` units of ``layer`` switched off
    (their channels zeroed) and the ``boost`` units multiplied by their factors."""

    def hook(_module, _inputs, output):
        channels = output.shape[1]
        for unit in [*ablate, *(boost or {})]:
            if not 0 <= unit < channels:
                raise UserError(
                    f"unit {unit} is out of range: layer {layer} has {channels} channels (units 0..{channels - 1})"
                )
        return _apply(output, unit_scale(channels, ablate, boost))

    handle = module_of(G, layer).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def activations(G: nn.Module, layer: str, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """``layer``'s output for ``z`` (and classes ``y``), as the rest of G received it:
    after any intervention active on it. Cloned, since an inplace ReLU after the layer
    would overwrite it."""
    captured: list[torch.Tensor] = []
    handle = module_of(G, layer).register_forward_hook(lambda _m, _i, output: captured.append(output.clone()))
    try:
        generate(G, z, y)
    finally:
        handle.remove()
    return captured[0]


@torch.no_grad()
def tail_after(G: nn.Module, layer: str, z: torch.Tensor, y: torch.Tensor | None) -> nn.Sequential | None:
    """The modules of G that run after ``layer``, when that is easy to say: the layer is an
    element of an ``nn.Sequential`` whose output, reshaped to the image's shape, is G's
    output (the DCGAN and MLP generators). Checked on ``z``; ``None`` otherwise."""
    parent_name, _, index = layer.rpartition(".")
    parent = dict(G.named_modules()).get(parent_name)
    if not isinstance(parent, nn.Sequential) or not index.isdigit():
        return None
    rest = parent[int(index) + 1 :]
    image = generate(G, z, y)
    try:
        again = rest(activations(G, layer, z, y)).reshape(image.shape)
    except RuntimeError:  # G does more to the Sequential's output than reshape it
        return None
    return rest if torch.allclose(again, image, atol=1e-5) else None


def _linear_conv(module: nn.Module | None) -> bool:
    return isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.groups == 1 and module.padding_mode == "zeros"


def _one_channel(conv: nn.Conv2d | nn.ConvTranspose2d, x: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
    """Row i: what input channel ``units[i]`` alone, ``x[i]`` (H, W), adds to ``conv``'s
    output (no bias). One grouped convolution, a group per row: 1/C of the full cost."""
    rows = len(units)
    if isinstance(conv, nn.ConvTranspose2d):  # weight (in, out, k, k)
        out = F.conv_transpose2d(
            x[None], conv.weight[units], None, conv.stride, conv.padding, conv.output_padding, rows, conv.dilation
        )
    else:  # weight (out, in, k, k)
        weight = conv.weight[:, units].transpose(0, 1).reshape(-1, 1, *conv.weight.shape[2:])
        out = F.conv2d(x[None], weight, None, conv.stride, conv.padding, conv.dilation, rows)
    return out.view(rows, -1, *out.shape[-2:])


def ablation_runner(
    G: nn.Module, layer: str, z: torch.Tensor, y: torch.Tensor | None, h: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``run(samples, units)``: G's images of ``z[samples]``, row i with ``units[i]`` of
    ``layer`` (whose output on z is ``h``) switched off. The cheapest way that is exact:

    * G after the layer is a plain Sequential tail: only the tail runs, on ``h`` with the
      unit zeroed; and when the tail starts with a convolution, which is linear, its
      output on ``h`` is computed once and each unit's own contribution subtracted;
    * otherwise all of G runs, with a per-row hook."""
    rest = tail_after(G, layer, z[:1], None if y is None else y[:1])
    shape = (-1, *generate(G, z[:1], None if y is None else y[:1]).shape[1:])
    if rest is None:

        def full(samples: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
            scale = torch.ones(len(units), h.shape[1], device=h.device)
            scale[torch.arange(len(units), device=h.device), units] = 0.0
            with scaled(G, layer, scale):
                return generate(G, z[samples], None if y is None else y[samples])

        return full
    if len(rest) and _linear_conv(rest[0]):
        conv, after = rest[0], rest[1:]
        base = conv(h)

        def linear(samples: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
            return after(base[samples] - _one_channel(conv, h[samples, units], units)).reshape(shape)

        return linear

    def tail(samples: torch.Tensor, units: torch.Tensor) -> torch.Tensor:
        x = h[samples].clone()
        x[torch.arange(len(units), device=h.device), units] = 0.0
        return rest(x).reshape(shape)

    return tail


# --- masks: where each unit fires ------------------------------------------------------


def upsampled(h: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(h.float(), size=(size, size), mode="bilinear", align_corners=False)


@torch.no_grad()
def unit_thresholds(h: torch.Tensor, size: int, quantile: float, chunk_values: int = 1 << 22) -> torch.Tensor:
    """Per unit, the ``quantile`` of all its upsampled map values over the batch: (C,).
    A few units at a time, since a 512-channel layer upsampled to 64x64 over 64 samples
    would hold half a gigabyte (and torch.quantile takes at most 2**24 values)."""
    n, channels = h.shape[:2]
    per_unit = n * size * size
    step = max(1, chunk_values // per_unit)
    thresholds = []
    for start in range(0, channels, step):
        maps = upsampled(h[:, start : start + step], size).transpose(0, 1).reshape(-1, per_unit)
        if per_unit <= 1 << 24:
            thresholds.append(torch.quantile(maps, quantile, dim=1))
        else:  # the exact order statistic, without torch.quantile's size limit
            k = min(per_unit, max(1, int(round(quantile * (per_unit - 1))) + 1))
            thresholds.append(maps.kthvalue(k, dim=1).values)
    return torch.cat(thresholds).cpu()


@torch.no_grad()
def unit_masks(h: torch.Tensor, units: list[int], size: int, thresholds: torch.Tensor) -> torch.Tensor:
    """Boolean (N, len(units), size, size): where each unit's upsampled map exceeds its
    threshold. Strictly above: a unit that is mostly 0 (a ReLU's off state) does not
    cover the image with a threshold of 0."""
    maps = upsampled(h[:, units], size)
    return maps > thresholds[units].to(maps.device).view(1, -1, 1, 1)


# --- ranking: the effect of switching each unit off ------------------------------------


@dataclass
class Effects:
    """Per unit (rows) and sample (columns), what switching the unit off did."""

    output_change: torch.Tensor  # mean |G_ablated - G| over the pixels
    d_score_change: torch.Tensor | None  # D(G_ablated) - D(G)
    class_flip: torch.Tensor | None  # the judge's decision changed (bool)


@torch.no_grad()
def ablation_effects(
    G: nn.Module,
    layer: str,
    z: torch.Tensor,
    y: torch.Tensor | None,
    D: nn.Module | None = None,
    judge: nn.Module | None = None,
    batch_size: int = 256,
) -> Effects:
    """Switch every unit of ``layer`` off, one at a time, on the same samples.

    The (unit, sample) pairs are run ``batch_size`` at a time, each row of a batch with
    its own unit zeroed, reusing the layer's activations where G allows (``ablation_runner``)."""
    h = activations(G, layer, z, y)
    n, channels = h.shape[:2]
    base = generate(G, z, y)
    base_score = D(base, y) if D is not None else None
    base_class = judge(base).argmax(1) if judge is not None else None
    ablated = ablation_runner(G, layer, z, y, h)

    change = torch.empty(channels * n)
    score = torch.empty(channels * n) if D is not None else None
    flip = torch.empty(channels * n, dtype=torch.bool) if judge is not None else None
    for start in range(0, channels * n, batch_size):
        rows = torch.arange(start, min(start + batch_size, channels * n), device=z.device)
        units, samples = rows // n, rows % n
        out = ablated(samples, units)
        ys = None if y is None else y[samples]
        part = slice(start, start + len(rows))
        change[part] = (out - base[samples]).abs().flatten(1).mean(1).cpu()
        if D is not None:
            score[part] = (D(out, ys) - base_score[samples]).float().cpu()
        if judge is not None:
            flip[part] = (judge(out).argmax(1) != base_class[samples]).cpu()

    def per_unit(values: torch.Tensor | None) -> torch.Tensor | None:
        return None if values is None else values.view(channels, n)

    return Effects(per_unit(change), per_unit(score), per_unit(flip))


def ranking_rows(h: torch.Tensor, effects: Effects) -> list[dict]:
    """One row per unit, the largest output change first."""
    mean_activation = h.float().mean(dim=(0, *range(2, h.dim()))).cpu()
    rows = []
    for unit in range(h.shape[1]):
        rows.append(
            {
                "unit": unit,
                "mean_activation": float(mean_activation[unit]),
                "output_change": float(effects.output_change[unit].mean()),
                "d_score_change": "" if effects.d_score_change is None else float(effects.d_score_change[unit].mean()),
                "class_flip_rate": "" if effects.class_flip is None else float(effects.class_flip[unit].float().mean()),
            }
        )
    return sorted(rows, key=lambda row: -row["output_change"])
