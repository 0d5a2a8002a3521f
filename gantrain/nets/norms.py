"""The normalisation choices shared by the nets.

pix2pix (Isola et al., 2017) normalises with BatchNorm; CycleGAN (Zhu et al., 2017)
with InstanceNorm, which normalises each image on its own and so suits batch size 1.
As in the authors' code, InstanceNorm here has no affine parameters and no running
statistics, and BatchNorm has both.

Spectral normalisation (Miyato, Kataoka, Koyama & Yoshida, ICLR 2018) is a choice of
the discriminators only. It divides each weight W by its largest singular value,
W_SN = W / sigma(W), so that every layer, and with 1-Lipschitz activations the whole
D, is at most 1-Lipschitz. sigma(W) comes from one step of power iteration per forward
pass, v <- W^T u / |W^T u|, u <- W v / |W v|, sigma = u^T W v (their Algorithm 1),
with u carried over from the previous pass. As in the
paper, a spectrally normalised D has no BatchNorm, and every weight layer is
normalised, convolutions as the matrix W.reshape(out_channels, -1) and the last
linear layer included. The authors' Chainer code (pfnet-research/sngan_projection,
``source/links/sn_linear.py``, ``sn_convolution_2d.py``, ``sn_embed_id.py``) uses
``Ip=1`` power iteration by default, on every call of the layer, and normalises the
projection discriminator's class embedding (``SNEmbedID``, Miyato & Koyama, 2018) too.
Here torch's ``torch.nn.utils.parametrizations.spectral_norm`` does the same: one
iteration per access of the weight in training mode, none in eval mode, and u and v
are buffers of the module, so they travel in its ``state_dict`` and a resumed run
continues the power iteration exactly where it stopped.
"""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gantrain.errors import OptionError

Norm2d = Literal["batch", "instance", "none"]
NORMS_2D: tuple[str, ...] = get_args(Norm2d)
SPECTRAL = "spectral"
# The power iterations per forward pass: Ip=1 in the authors' code, as in the paper.
POWER_ITERATIONS = 1


def check_norm(norm: str, option: str = "norm", choices: tuple[str, ...] = NORMS_2D) -> None:
    """Raise an OptionError about the parameter ``option`` when ``norm`` is not among ``choices``."""
    if norm not in choices:
        raise OptionError(option, f"{option}={norm!r} is not known: use {', '.join(choices)}")


def spectrally_normalised(net: nn.Module) -> nn.Module:
    """``net`` with every convolution, linear layer and embedding spectrally normalised
    (in place; returns ``net``). Call it after initialising the weights: the
    parametrisation then keeps the initial W as its ``original`` and normalises on use."""
    for module in list(net.modules()):
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
            spectral_norm(module, n_power_iterations=POWER_ITERATIONS)
    return net


def norm2d(norm: str, channels: int) -> nn.Module:
    check_norm(norm)
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
