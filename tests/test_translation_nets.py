"""The image-to-image nets (pix2pix's U-Net and PatchGAN, CycleGAN's ResNet generator)
have the shapes, layers and receptive fields of the papers and the authors' code."""

import math

import pytest
import torch
from torch import nn

from gantrain.errors import UserError
from gantrain.nets.patchgan import PatchDiscriminator, receptive_field
from gantrain.nets.resnet import ResidualBlock, ResnetGenerator
from gantrain.nets.unet import UNetGenerator


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --- U-Net -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 128, 256])
def test_unet_output_has_the_input_shape(size):
    G = UNetGenerator(3, 3, size, width=8)
    y = G(torch.randn(2, 3, size, size))
    assert y.shape == (2, 3, size, size) and y.abs().max() <= 1  # Tanh output


@pytest.mark.parametrize("size,depth", [(16, 4), (64, 6), (128, 7), (256, 8)])
def test_unet_downsamples_to_a_1x1_bottleneck(size, depth):
    G = UNetGenerator(1, 2, size, width=4)
    assert G.depth == len(G.downs) == len(G.ups) == depth == math.log2(size)
    features = G.encode(torch.randn(1, 1, size, size))
    assert [f.shape[-1] for f in features] == [size >> (k + 1) for k in range(depth)]
    assert [f.shape[1] for f in features] == [4 * min(2**k, 8) for k in range(depth)]
    assert G(torch.randn(1, 1, size, size)).shape == (1, 2, size, size)


def test_unet_blocks_follow_pix2pix():
    G = UNetGenerator(3, 3, 256, width=8)
    downs, ups = list(G.downs), list(G.ups)
    norms = [sum(isinstance(m, nn.BatchNorm2d) for m in block) for block in downs]
    assert norms == [0, 1, 1, 1, 1, 1, 1, 0]  # not the outermost, not the 1x1 bottleneck
    assert all(isinstance(block[-1], nn.LeakyReLU) and block[-1].negative_slope == 0.2 for block in downs[:-1])
    assert all(isinstance(block[0], nn.ReLU) for block in ups)
    assert isinstance(ups[0][-1], nn.Tanh) and not any(isinstance(m, nn.BatchNorm2d) for m in ups[0])
    assert all(isinstance(block[2], nn.BatchNorm2d) for block in ups[1:])
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs)
    # a bias only where no BatchNorm follows
    assert [c.bias is not None for c in G.downs.modules() if isinstance(c, nn.Conv2d)] == [True] + [False] * 6 + [True]
    assert [block[1].bias is not None for block in ups] == [True] + [False] * 7
    instance = UNetGenerator(3, 3, 64, width=8, norm="instance")
    assert all(c.bias is not None for c in instance.modules() if isinstance(c, (nn.Conv2d, nn.ConvTranspose2d)))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in UNetGenerator(3, 3, 64, width=8, norm="none").modules())


@pytest.mark.parametrize("size,dropped", [(16, [1, 2]), (64, [2, 3, 4]), (128, [3, 4, 5]), (256, [4, 5, 6])])
def test_unet_dropout_sits_in_the_three_decoder_blocks_after_the_bottleneck(size, dropped):
    G = UNetGenerator(3, 3, size, width=4)
    with_dropout = [k for k, block in enumerate(G.ups) if any(isinstance(m, nn.Dropout) for m in block)]
    assert with_dropout == dropped  # ups[-1] is the bottleneck's, ups[0] the output
    assert all(m.p == 0.5 for m in G.modules() if isinstance(m, nn.Dropout))
    assert not any(isinstance(m, nn.Dropout) for m in UNetGenerator(3, 3, size, width=4, dropout=0).modules())


def test_unet_dropout_is_on_in_training_only():
    G = UNetGenerator(1, 1, 64, width=8)
    x = torch.randn(2, 1, 64, 64)
    assert not torch.equal(G(x), G(x))
    G.eval()
    assert torch.equal(G(x), G(x))


def test_unet_parameter_count():
    # Worked out by hand for width 8 at 64x64 (widths 8, 16, 32, 64, 64, 64), 3 -> 2 channels.
    w = [8, 16, 32, 64, 64, 64]
    downs = 3 * w[0] * 16 + w[0] + sum(w[k - 1] * w[k] * 16 + 2 * w[k] for k in range(1, 5)) + w[4] * w[5] * 16 + w[5]
    ups = (
        w[5] * w[4] * 16
        + 2 * w[4]
        + sum(2 * w[k] * w[k - 1] * 16 + 2 * w[k - 1] for k in range(1, 5))
        + 2 * w[0] * 2 * 16
        + 2
    )
    assert _count(UNetGenerator(3, 2, 64, width=8)) == downs + ups
    # The authors' code prints 54.414 M for pix2pix's unet_256 (ngf 64, batch norm). It also
    # drops the bias of the outermost and innermost down convs, which no BatchNorm follows;
    # we keep those 64 + 512 biases.
    assert round((_count(UNetGenerator(3, 3, 256)) - 64 - 512) / 1e6, 3) == 54.414


def _patch_change(G: UNetGenerator, x: torch.Tensor, skips: bool) -> tuple[float, float]:
    """Mean |output change| near a 2x2 input patch at (30, 30) and far (>= 16 px) from it."""
    bumped = x.clone()
    bumped[..., 30:32, 30:32] += 1.0

    def run(inp: torch.Tensor) -> torch.Tensor:
        features = G.encode(inp)
        if not skips:  # only the 1x1 bottleneck reaches the decoder
            features = [torch.zeros_like(f) for f in features[:-1]] + features[-1:]
        return G.decode(features)

    with torch.no_grad():
        change = (run(bumped) - run(x)).abs()[0].sum(0)
    rows, cols = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    distance = torch.maximum((rows - 30.5).abs(), (cols - 30.5).abs())
    return change[distance <= 4].mean().item(), change[distance >= 16].mean().item()


def test_unet_skips_carry_local_detail():
    torch.manual_seed(0)
    G = UNetGenerator(1, 1, 64, width=8).double().eval()
    x = torch.randn(1, 1, 64, 64, dtype=torch.float64)
    near, far = _patch_change(G, x, skips=True)
    assert near > 0 and near > 100 * far  # the change stays where the input changed
    # Through the bottleneck alone the same change is spread over the whole image.
    near, far = _patch_change(G, x, skips=False)
    assert far > 0 and near < 10 * far


# --- PatchGAN ----------------------------------------------------------------------


@pytest.mark.parametrize("size,logits", [(256, 30), (128, 14), (64, 6)])
def test_patchgan_logit_map_size(size, logits):
    D = PatchDiscriminator(6, width=8)
    assert D(torch.randn(2, 6, size, size)).shape == (2, 1, logits, logits)


def test_patchgan_layers_follow_pix2pix():
    D = PatchDiscriminator(6, width=8)
    layers = list(D.net)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.stride[0]) for c in convs] == [(8, 2), (16, 2), (32, 2), (64, 1), (1, 1)]
    assert all(c.kernel_size == (4, 4) and c.padding == (1, 1) for c in convs)
    assert isinstance(layers[1], nn.LeakyReLU) and layers[1].negative_slope == 0.2  # no norm on the input
    assert sum(isinstance(m, nn.BatchNorm2d) for m in layers) == 3
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]
    wide = PatchDiscriminator(3, width=8, layers=5)
    assert [c.out_channels for c in wide.net if isinstance(c, nn.Conv2d)] == [8, 16, 32, 64, 64, 64, 1]
    assert not any(isinstance(m, nn.InstanceNorm2d) for m in PatchDiscriminator(3, norm="batch").modules())
    assert sum(isinstance(m, nn.InstanceNorm2d) for m in PatchDiscriminator(3, norm="instance").modules()) == 3


def test_receptive_field_is_70_with_three_layers():
    assert receptive_field(3) == 70
    assert [receptive_field(n) for n in (1, 2, 3, 4)] == [16, 34, 70, 142]


@pytest.mark.parametrize("layers", [1, 2, 3, 4])
def test_measured_receptive_field_matches(layers):
    """One central logit's gradient is non-zero exactly on a square of receptive_field(layers)."""
    torch.manual_seed(0)
    D = PatchDiscriminator(2, width=4, layers=layers, norm="none").double()  # no norm: no coupling
    x = torch.randn(1, 2, 256, 256, dtype=torch.float64, requires_grad=True)
    logits = D(x)
    h, w = logits.shape[-2:]
    logits[0, 0, h // 2, w // 2].backward()
    seen = (x.grad[0] != 0).any(0)
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    side = receptive_field(layers)
    assert rows.max() - rows.min() + 1 == side and cols.max() - cols.min() + 1 == side
    assert seen.sum() == side * side  # the whole square, nothing outside it
    assert 0 < rows.min() and rows.max() < 255  # not clipped by the image border


def test_patchgan_parameter_count():
    # The authors' code prints 2.769 M for pix2pix's D (A and B: 6 channels), 2.765 M for CycleGAN's.
    assert round(_count(PatchDiscriminator(6)) / 1e6, 3) == 2.769
    assert round(_count(PatchDiscriminator(3, norm="instance")) / 1e6, 3) == 2.765


# --- ResNet generator --------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 256])
def test_resnet_output_has_the_input_shape(size):
    G = ResnetGenerator(3, 2, size, width=8)
    y = G(torch.randn(1, 3, size, size))
    assert y.shape == (1, 2, size, size) and y.abs().max() <= 1


@pytest.mark.parametrize("size,blocks", [(64, 6), (128, 6), (252, 6), (256, 9), (512, 9)])
def test_resnet_blocks_follow_the_image_size(size, blocks):
    G = ResnetGenerator(3, 3, size, width=4)
    assert G.blocks == blocks == sum(isinstance(m, ResidualBlock) for m in G.modules())
    assert sum(isinstance(m, ResidualBlock) for m in ResnetGenerator(3, 3, size, width=4, blocks=2).modules()) == 2


def test_resnet_layers_follow_cyclegan():
    G = ResnetGenerator(3, 3, 64, width=8)
    pads = [m for m in G.modules() if isinstance(m, nn.ReflectionPad2d)]
    assert [p.padding for p in pads] == [(3, 3, 3, 3)] + [(1, 1, 1, 1)] * 12 + [(3, 3, 3, 3)]
    convs = [m for m in G.modules() if isinstance(m, nn.Conv2d)]
    # zero padding only in the two stride-2 convs; everything else is reflection padded
    assert [(c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs if c.padding != (0, 0)] == [(3, 2, 1)] * 2
    assert [(c.kernel_size[0], c.out_channels) for c in (convs[0], convs[-1])] == [(7, 8), (7, 3)]
    ups = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(u.out_channels, u.stride[0], u.output_padding[0]) for u in ups] == [(16, 2, 1), (8, 2, 1)]
    norms = [m for m in G.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert len(norms) == 3 + 2 * 6 + 2 and not any(n.affine for n in norms)
    assert isinstance(G.net[-1], nn.Tanh)
    features = G.net[:10](torch.randn(1, 3, 64, 64))
    assert features.shape == (1, 32, 16, 16)  # 4w channels at a quarter of the size


def test_resnet_blocks_are_residual():
    G = ResnetGenerator(1, 1, 64, width=4, blocks=1)
    block = next(m for m in G.modules() if isinstance(m, ResidualBlock))
    x = torch.randn(1, 16, 8, 8)
    assert torch.allclose(block(x), x + block.body(x))


def test_resnet_parameter_count():
    # The authors' code prints 11.378 M for CycleGAN's resnet_9blocks (ngf 64).
    assert round(_count(ResnetGenerator(3, 3, 256)) / 1e6, 3) == 11.378


# --- user errors -------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 8, 48, 100, 255])
def test_unet_sizes_it_cannot_make_are_a_user_error(size):
    with pytest.raises(UserError, match="set image_size to") as error:  # the CLI says data.image_size
        UNetGenerator(3, 3, size)
    assert error.value.option == "image_size"


@pytest.mark.parametrize("size", [4, 30, 66, 127])
def test_resnet_sizes_it_cannot_make_are_a_user_error(size):
    with pytest.raises(UserError, match="set image_size to") as error:  # the CLI says data.image_size
        ResnetGenerator(3, 3, size)
    assert error.value.option == "image_size"


# The nets name their own parameter; tests/test_spectral_norm.py checks the key path the CLI adds.
@pytest.mark.parametrize(
    "build,choices",
    [
        (lambda: UNetGenerator(3, 3, 64, norm="layer"), "batch, instance, none"),
        (lambda: ResnetGenerator(3, 3, 64, norm="spectral"), "batch, instance, none"),
        (lambda: PatchDiscriminator(6, norm="layer"), "batch, instance, none, spectral"),
    ],
)
def test_unknown_norm_is_a_user_error(build, choices):
    with pytest.raises(UserError, match=f"^norm=.* is not known: use {choices}$") as error:
        build()
    assert "\n" not in str(error.value) and error.value.option == "norm"


def test_patchgan_needs_a_downsampling_layer():
    with pytest.raises(UserError, match="set layers to 1 or more") as error:  # the CLI: model.discriminator.layers
        PatchDiscriminator(6, layers=0)
    assert error.value.option == "layers"
