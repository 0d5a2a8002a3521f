"""Freeze-D: fine-tune a discriminator with its first blocks frozen (Mo, Cho & Shin, 2020).

Mo et al. ("Freeze the Discriminator: a Simple Baseline for Fine-Tuning GANs",
arXiv:2002.10964, 2020) fine-tune a pretrained GAN on a small dataset
with the lower layers of D fixed: those extract generic image features and keep the
source data's; only the upper layers (and the output head) learn the new data. That
beats fine-tuning all of D on few images, where D overfits.

Here every discriminator is a ``nn.Sequential`` of blocks, input side first, each block
ending in its activation; what follows the last activation (the output layer) is the
last block. ``freeze=K`` sets ``requires_grad`` False on every parameter of the first K
blocks. The output head (and heads outside the sequence: the projection embedding,
AC-GAN's class head) always trains, so K is at most the number of blocks minus one.

What freezing does not stop: frozen blocks still run in training mode, as the whole D
always does during training. A BatchNorm in them normalises each batch with its own
statistics (as the source D did) and its running averages keep tracking the new data;
they are never used while training (D is not run in eval mode) and they are no weights.
Spectral normalisation's power-iteration vectors u, v keep iterating: on fixed weights
that only refines the estimate of their largest singular value. Only the parameters are
guaranteed unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from gantrain.checks import at_least
from gantrain.errors import OptionError

# A block of a discriminator ends after one of these.
ACTIVATIONS = (nn.LeakyReLU, nn.ReLU)


def blocks_of(net: nn.Sequential) -> list[list[nn.Module]]:
    """The blocks of ``net``, input side first: runs of layers each ending in an
    activation, then what follows the last activation (the output layer)."""
    blocks: list[list[nn.Module]] = [[]]
    for layer in net:
        blocks[-1].append(layer)
        if isinstance(layer, ACTIVATIONS):
            blocks.append([])
    return [block for block in blocks if block]


def freeze_blocks(net: nn.Sequential, count: int, option: str = "freeze") -> None:
    """Freeze the parameters of the first ``count`` blocks of ``net`` (see the module).
    Call it last in a constructor, after spectral normalisation has moved the weights
    into its parametrisation. ``count`` that leaves no block to train is an
    ``OptionError`` about ``option``."""
    at_least(option, count, 0)
    blocks = blocks_of(net)
    if count > len(blocks) - 1:
        raise OptionError(
            option,
            # No other use of the option's word here: the config layer puts the key in its place.
            f"{option}={count} covers all {len(blocks)} blocks of this discriminator, its output layer "
            f"included, and leaves nothing to train: set {option} to at most {len(blocks) - 1}",
        )
    for block in blocks[:count]:
        for layer in block:
            layer.requires_grad_(False)


def trainable_parameters(net: nn.Module) -> Iterator[nn.Parameter]:
    """The parameters an optimizer should update: all but the frozen ones."""
    return (p for p in net.parameters() if p.requires_grad)
