"""The differentiable augmentation ops of issue 17, as modules: DiffAugment (Zhao et al.,
2020) and ADA's "bgc" pipeline (Karras et al., 2020). Their wiring into the models, the
config group and ADA's controller are tested elsewhere. All of this runs in seconds."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from gantrain.augment.diffaugment import DiffAugment
from gantrain.augment.pipeline import COLOUR_OPS, AugmentPipeline
from gantrain.errors import OptionError

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
ALL_OPS = GEOMETRIC + COLOUR_OPS


def only(op: str, channels: int = 3) -> AugmentPipeline:
    """The pipeline with every op but ``op`` switched off."""
    return AugmentPipeline(channels, **{name: float(name == op) for name in ALL_OPS})


def images(n: int = 8, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, size, size, generator=generator) * 2 - 1


def pipeline_at_p_one(channels: int) -> Callable[[torch.Tensor], torch.Tensor]:
    module = AugmentPipeline(channels)
    return lambda x: module(x, torch.tensor(1.0))


# Each module as a function of x: DiffAugment with every policy, the pipeline at p = 1.
MODULES = {"diffaugment": DiffAugment, "pipeline": pipeline_at_p_one}


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_shape_and_dtype_kept(name: str, dtype: torch.dtype) -> None:
    augment = MODULES[name](3)
    x = images(4, 6).to(dtype)  # a pix2pix pair: 2 x 3 channels
    out = augment(x)
    assert out.shape == x.shape and out.dtype == dtype
    assert torch.isfinite(out.float()).all()


@pytest.mark.parametrize("name", MODULES)
def test_gradient_flows_to_the_input_twice(name: str) -> None:
    """G learns through the augmentation, and R1 differentiates D(T(x)) w.r.t. x: first
    and second derivatives both reach x."""
    augment = MODULES[name](3)
    x = images(4).requires_grad_()
    out = augment(x)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    x.grad = None
    (grad,) = torch.autograd.grad(augment(x).square().sum(), x, create_graph=True)
    grad.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODULES)
def test_random_per_call_and_sample_and_seeded(name: str) -> None:
    augment = MODULES[name](3)
    x = images(1).expand(6, -1, -1, -1)  # six copies of one image
    torch.manual_seed(3)
    first = augment(x)
    second = augment(x)
    torch.manual_seed(3)
    again = augment(x)
    assert not torch.equal(first, second)  # fresh draws at every call
    assert all(not torch.equal(first[0], first[k]) for k in range(1, 6))  # and for every sample
    assert torch.equal(first, again)  # reproducible from torch's global RNG


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.parametrize("channels", [1, 3])
def test_a_stacked_pair_stays_aligned(name: str, channels: int) -> None:
    augment = MODULES[name](channels)
    a = images(8, channels)
    out = augment(torch.cat([a, a], dim=1))
    assert torch.equal(out[:, :channels], out[:, channels:])
    assert not torch.allclose(out[:, :channels], a)


# ---- DiffAugment ----


def shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """x's content moved by (dy, dx) pixels, the uncovered border zero."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_translation_moves_by_an_integer_and_zero_pads() -> None:
    x = images(1, 2, 16).abs() + 0.1  # no zeros in the image itself
    x = x.expand(32, -1, -1, -1)
    torch.manual_seed(0)
    out = DiffAugment(2, policy=("translation",))(x)
    reach = 2  # round(16 * 0.125)
    seen = set()
    for k in range(out.shape[0]):
        matches = [
            (dy, dx)
            for dy in range(-reach, reach + 1)
            for dx in range(-reach, reach + 1)
            if torch.equal(out[k], shifted(x[k], dy, dx))
        ]
        assert len(matches) == 1, f"sample {k} is no shift within {reach} pixels"
        seen.add(matches[0])
    assert len(seen) > 5  # shifts differ between samples


@pytest.mark.parametrize("size, side", [(16, 8), (15, 8), (8, 4)])
def test_cutout_zeroes_a_square_of_the_stated_side(size: int, side: int) -> None:
    """A square of side round(cutout_ratio * size), clipped where it crosses the border;
    everything else untouched."""
    x = torch.ones(64, 3, size, size)
    torch.manual_seed(1)
    out = DiffAugment(3, policy=["cutout"])(x)
    full = 0
    for k in range(out.shape[0]):
        zero = out[k] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # all channels alike
        rows = zero[0].any(dim=1).nonzero().flatten().tolist()
        cols = zero[0].any(dim=0).nonzero().flatten().tolist()
        assert rows == list(range(rows[0], rows[-1] + 1)) and cols == list(range(cols[0], cols[-1] + 1))
        assert zero[0].sum() == len(rows) * len(cols)  # a rectangle ...
        assert (out[k][~zero] == 1).all()  # ... and nothing else changed
        for span, first, last in ((len(rows), rows[0], rows[-1]), (len(cols), cols[0], cols[-1])):
            # ... of the stated side, short only where the border clips it
            assert span == side or (span < side and (first == 0 or last == size - 1))
        full += len(rows) == side and len(cols) == side
    assert full > 0


def test_colour_alone_is_pointwise_and_uniform_in_space() -> None:
    """The colour ops change values, not where they are: a flat image stays flat."""
    flat = images(8, 3, 1).expand(-1, -1, 8, 8)
    out = DiffAugment(3, policy=("color",))(flat)
    assert torch.allclose(out, out[..., :1, :1].expand_as(out))
    assert not torch.allclose(out, flat)


def test_each_policy_selectable_alone_and_empty_is_identity() -> None:
    x = images(8)
    assert torch.equal(DiffAugment(3, policy=())(x), x)
    torch.manual_seed(0)
    translated = DiffAugment(3, policy="translation")(x)  # the authors' comma-separated spelling
    cut = DiffAugment(3, policy="cutout")(x)
    # Translation keeps a shifted copy (zero only at borders); cutout changes values only to 0.
    assert ((cut == x) | (cut == 0)).all() and not torch.equal(cut, x)
    assert not torch.equal(translated, x) and translated.abs().sum() > 0
    both = DiffAugment(3, policy="translation, cutout")
    assert both.policy == ("translation", "cutout")


def test_diffaugment_refuses_unknown_policies_and_ratios() -> None:
    with pytest.raises(OptionError, match=r"policy has 'flip', not known: use any of color, translation, cutout"):
        DiffAugment(3, policy=("color", "flip"))
    with pytest.raises(OptionError, match=r"translation_ratio=1.5 must lie in \[0.0, 1.0\]") as info:
        DiffAugment(3, translation_ratio=1.5)
    assert info.value.option == "translation_ratio"
    with pytest.raises(OptionError) as info:
        DiffAugment(3, cutout_ratio=float("nan"))
    assert info.value.option == "cutout_ratio"
    # The config layer adds the key path (gantrain/errors.py).
    assert "augment.policy has 'flip'" in str(OptionError("policy", "policy has 'flip'").under("augment"))


# ---- the ADA pipeline ----


@pytest.mark.parametrize("channels, groups", [(3, 1), (1, 1), (3, 2), (1, 2)])
def test_pipeline_at_p_zero_is_the_identity(channels: int, groups: int) -> None:
    x = images(8, channels * groups, 12)
    out = AugmentPipeline(channels)(x, torch.tensor(0.0))
    assert (out - x).abs().max() < 1e-5


def test_pipeline_xflip_mirrors_exactly() -> None:
    """An applied x-flip mirrors with probability 1/2, as the authors' does (i ~ U{0, 1}): at
    p = 1 each image comes out exactly itself or exactly mirrored, and both occur."""
    x = images(64, 3, 10)
    torch.manual_seed(0)
    out = only("xflip")(x, torch.tensor(1.0))
    same = (out - x).abs().amax(dim=(1, 2, 3)) < 1e-5
    mirrored = (out - x.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert (same | mirrored).all() and same.any() and mirrored.any()


def test_pipeline_rotate90_rotates_exactly() -> None:
    x = images(64, 1, 9)
    torch.manual_seed(0)
    out = only("rotate90", channels=1)(x, torch.tensor(1.0))
    which = torch.stack([(out - x.rot90(k, dims=(2, 3))).abs().amax(dim=(1, 2, 3)) < 1e-5 for k in range(4)])
    assert (which.sum(dim=0) == 1).all()  # each image is exactly one of the four rotations
    assert which.any(dim=1).all()  # and all four occur


def changed(p: float, op: str = "brightness", n: int = 2000) -> float:
    """The fraction of n samples that ``op`` alone changes at strength p."""
    x = images(n, 1, 4)
    torch.manual_seed(0)
    out = only(op, channels=1)(x, torch.tensor(p))
    return ((out - x).abs().amax(dim=(1, 2, 3)) > 1e-4).float().mean().item()


def test_pipeline_applies_an_op_with_probability_p() -> None:
    # Binomial(2000, 1/2): the standard deviation of the fraction is 0.011; 0.08 is seven of them.
    assert abs(changed(0.5) - 0.5) < 0.08
    fractions = [changed(p) for p in (0.0, 0.2, 0.5, 0.8, 1.0)]
    assert fractions[0] == 0 and fractions[-1] == 1
    assert fractions == sorted(fractions) and len(set(fractions)) == len(fractions)
    # The two rotations together are applied with probability p (each 1 - sqrt(1 - p)).
    assert abs(changed(0.5, "rotate") - 0.5) < 0.08


def test_pipeline_never_reads_p_on_the_host() -> None:
    """p lives on the device and changes every few steps: reading it would sync the step."""

    class Unreadable(torch.Tensor):
        def _refuse(self, *args, **kwargs):
            raise AssertionError("p was read on the host")

        __bool__ = __float__ = __int__ = __index__ = item = tolist = _refuse

    p = torch.tensor(0.7).as_subclass(Unreadable)
    out = AugmentPipeline(3)(images(4, 6), p)
    assert out.shape == (4, 6, 16, 16)


def test_pipeline_colour_on_one_channel_keeps_grey_grey() -> None:
    """1-channel images get the mean of the colour matrix's three rows (the authors' way)."""
    grey = images(64, 1, 4)
    torch.manual_seed(0)
    one = only("lumaflip", channels=1)(grey, torch.tensor(1.0))
    flipped = (one + grey).abs().amax(dim=(1, 2, 3)) < 1e-5  # the flip about the luma axis: -x
    same = (one - grey).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert (flipped | same).all() and flipped.any() and same.any()
    # On 3 channels, a grey image (R = G = B) is flipped the same way.
    torch.manual_seed(0)
    three = only("lumaflip")(grey.expand(-1, 3, -1, -1), torch.tensor(1.0))
    assert torch.allclose(three, one.expand(-1, 3, -1, -1), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, option",
    [({"xflip": -1.0}, "xflip"), ({"scale_std": float("nan")}, "scale_std"), ({"hue": math.inf}, "hue")],
)
def test_pipeline_refuses_bad_multipliers_and_stds(kwargs: dict, option: str) -> None:
    with pytest.raises(OptionError) as info:
        AugmentPipeline(3, **kwargs)
    assert info.value.option == option and option in str(info.value)
    assert f"augment.{option}" in str(info.value.under("augment"))


def test_pipeline_colour_needs_one_or_three_channels() -> None:
    with pytest.raises(OptionError, match="channels=4: the colour ops work on 1- or 3-channel images"):
        AugmentPipeline(4)
    geometric_only = AugmentPipeline(4, **{op: 0.0 for op in COLOUR_OPS})
    assert geometric_only(images(2, 4), torch.tensor(1.0)).shape == (2, 4, 16, 16)
