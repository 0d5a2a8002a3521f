"""The DCGAN and MLP nets have the shapes and layers that SEEDS.md describes."""

import pytest
import torch
from torch import nn

from gantrain.errors import UserError
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gantrain.nets.mlp import MLPDiscriminator, MLPGenerator


def _spatial_sizes(net: nn.Module, x: torch.Tensor, kinds) -> list[int]:
    sizes = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
        for m in net.modules()
        if isinstance(m, kinds)
    ]
    net(x)
    for hook in hooks:
        hook.remove()
    return sizes


def test_mnist_generator_is_the_seed_stack():
    G = DCGANGenerator(z_dim=64, channels=1, image_size=28)
    convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.kernel_size[0], c.stride[0]) for c in convs] == [(3, 2), (4, 1), (3, 2), (4, 2)]
    z = torch.randn(2, 64)
    sizes = []
    hooks = [c.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for c in convs]
    assert G(z).shape == (2, 1, 28, 28)
    assert sizes == [3, 6, 13, 28]
    for hook in hooks:
        hook.remove()


def test_celeba_generator_doubles_from_4_to_64():
    G = DCGANGenerator(z_dim=100, channels=3, image_size=64)
    assert _spatial_sizes(G, torch.randn(2, 100), nn.ConvTranspose2d) == [4, 8, 16, 32, 64]


@pytest.mark.parametrize("size,expected", [(28, [13, 6, 3, 1]), (64, [32, 16, 8, 4, 1])])
def test_discriminator_mirrors_the_generator(size, expected):
    D = DCGANDiscriminator(channels=3, image_size=size)
    x = torch.randn(2, 3, size, size)
    assert _spatial_sizes(D, x, nn.Conv2d) == expected
    assert D(x).shape == (2,)


def test_batchnorm_and_activations_follow_dcgan():
    G = DCGANGenerator(z_dim=8, channels=3, image_size=64, width=8)
    D = DCGANDiscriminator(channels=3, image_size=64, width=8)
    g_layers, d_layers = list(G.net), list(D.net)
    assert isinstance(g_layers[-1], nn.Tanh) and isinstance(g_layers[-2], nn.ConvTranspose2d)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g_layers) == 4  # every block but the output
    assert isinstance(d_layers[0], nn.Conv2d) and isinstance(d_layers[1], nn.LeakyReLU)  # no BN on input
    assert d_layers[1].negative_slope == 0.2
    assert isinstance(d_layers[-1], nn.Conv2d)  # final block: conv only, a logit
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d_layers) == 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in DCGANDiscriminator(3, 64, width=8, norm="none").modules())


@pytest.mark.parametrize("size", [20, 48, 100])
def test_sizes_the_generator_cannot_make_are_a_user_error(size):
    with pytest.raises(UserError, match="set image_size to one of") as error:  # the CLI says data.image_size
        DCGANGenerator(z_dim=8, channels=1, image_size=size)
    assert error.value.option == "image_size"


def test_conditional_nets_take_labels():
    G = DCGANGenerator(z_dim=8, channels=1, image_size=28, num_classes=10, width=8)
    D = DCGANDiscriminator(channels=1, image_size=28, num_classes=10, width=8)
    y = torch.tensor([3, 7])
    assert D(G(torch.randn(2, 8), y), y).shape == (2,)
    assert G.net[0].in_channels == 18 and D.net[0].in_channels == 11


def test_mlp_gan_is_the_seed_architecture():
    G = MLPGenerator(z_dim=10, channels=1, image_size=28, hidden=128, blocks=4)
    linears = [m for m in G.net if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [128, 256, 512, 1024, 784]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in G.net) == 4 and isinstance(G.net[-1], nn.Tanh)
    D = MLPDiscriminator(channels=1, image_size=28, hidden=128, blocks=3)
    assert [m.out_features for m in D.net if isinstance(m, nn.Linear)] == [512, 256, 128, 1]
    assert all(m.negative_slope == 0.2 for m in D.net if isinstance(m, nn.LeakyReLU))
    x = G(torch.randn(4, 10))
    assert x.shape == (4, 1, 28, 28) and x.abs().max() <= 1
    assert D(x).shape == (4,)
