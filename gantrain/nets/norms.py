"""The normalisation choice shared by the image-to-image nets (U-Net, PatchGAN, ResNet).

pix2pix (Isola et al., 2017) normalises with BatchNorm; CycleGAN (Zhu et al., 2017)
with InstanceNorm, which normalises each image on its own and so suits batch size 1.
As in the authors' code, InstanceNorm here has no affine parameters and no running
statistics, and BatchNorm has both.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from gantrain.errors import UserError

Norm2d = Literal["batch", "instance", "none"]
NORMS_2D: tuple[str, ...] = get_args(Norm2d)


def check_norm(norm: str, option: str) -> None:
    """Raise a UserError naming the config ``option`` when ``norm`` is not a known kind."""
    if norm not in NORMS_2D:
        raise UserError(f"{option}={norm!r} is not known: use {', '.join(NORMS_2D)}")


def norm2d(norm: str, channels: int) -> nn.Module:
    check_norm(norm, "norm")
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    return nn.Identity()


def conv_bias(norm: str, normalised: bool = True) -> bool:
    """Whether a conv needs a bias: not when a BatchNorm follows, whose mean subtraction
    would cancel it. InstanceNorm (without affine) cancels it too, but the reference
    code keeps it there, and so do we for the same weights layout."""
    return not (normalised and norm == "batch")
