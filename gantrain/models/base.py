"""The model contract: everything build, the loop, the metrics and the tools know about
a GAN algorithm. A new model is one subclass of ``GANModel`` in ``models/`` plus one
``conf/model/*.yaml``; nothing outside ``models/`` asks which model it is.

A model declares, in this order of its life:

* **data**: ``data_kind``, the kind of batches it trains on (``DataSpec.pairing``:
  single images, paired A|B images, two unpaired domains); ``check_data`` refuses a
  dataset it cannot use (a conditional model on unlabelled data).
* **construction**: ``check_options`` checks its YAML's own keys before any data is
  read; ``build_nets`` makes its constructor's data-dependent arguments (the nets,
  from the G/D factories of its YAML and the data spec; class counts, shapes);
  ``built_args`` names them, so the config check refuses them in a YAML.
* **one step** (the loop owns ``backward()`` and ``step()``): ``d_loss(batch)`` and
  ``g_loss(batch)`` return the loss and its logged parts; ``after_d_step()`` runs after
  each D update (WGAN's clipping); ``callable_nets()`` lists the nets it calls, and
  ``twice_differentiated()`` those whose graphs a penalty differentiates twice (the
  fast path compiles the first and leaves the second eager).
* **augmentation** (``augment=diffaugment|ada``, ``gantrain/augment/``): ``augment``, set
  by build after construction, is applied to every image D sees (``augment.base.augmented``),
  in D's step, G's step and the penalties; ``discriminator_loss`` reports D's real scores
  to it (ADA's r_t). Each model keeps labels and stacked pairs as they are.
* **samples and validation**: ``fixed_inputs`` (what every sample grid is drawn from),
  ``sample_grid``, ``validation``/``validate`` (held-out metrics at each grid), and
  ``calibration_inputs`` (what an EMA copy of G recomputes BatchNorm statistics on).
* **quality**: ``evaluator`` (metrics during training, ``eval.every``) and ``evaluate``
  (``gantrain-eval`` on a trained generator).
* **the trained generator** (what the tools load: G alone, without the model):
  ``generator_info`` says what it maps (noise of ``z_dim`` and classes, or images in
  ``directions``), and ``translator`` gives one callable ``images -> images`` per
  direction, run as the model runs it at test time.

Errors about the model's own options are ``OptionError``s naming the option bare
(``cycle_weight``); the config layer adds the key path (``model.cycle_weight``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import nn

from gantrain.augment.base import Augmentation
from gantrain.engine.trainer_config import Evaluator  # what the loop calls every eval.every steps
from gantrain.errors import OptionError, UserError

# What a model trains on: DataSpec.pairing's values.
DataKind = Literal["none", "paired", "unpaired"]
DATA_KINDS: dict[str, str] = {
    "none": "single images (mnist, celeba, folder, ...)",
    "paired": "paired A|B images (data=facades or data=paired_folder)",
    "unpaired": "two unpaired domains (data=unpaired_folder)",
}

Batch = dict[str, torch.Tensor]
Logs = dict[str, torch.Tensor]


class NetFactory(Protocol):
    """A net's constructor with its YAML options bound; ``build_nets`` passes the
    data-dependent arguments (``channels``, ``image_size``, ``num_classes``, ...)."""

    def __call__(self, **data_args: Any) -> nn.Module: ...


@dataclass(frozen=True)
class GeneratorInfo:
    """What a trained generator maps, for the tools. ``kind`` "noise": z of ``z_dim``
    (and a class in ``range(num_classes)`` when ``num_classes`` > 0) to an image;
    "translator": an image to an image, in each of ``directions`` ("AB", "BA")."""

    kind: Literal["noise", "translator"]
    z_dim: int = 0
    num_classes: int = 0
    directions: tuple[str, ...] = ()


def leaf_nets(net: nn.Module) -> list[nn.Module]:
    """The callable nets of a model's G or D (CycleGAN keeps two of each in a ModuleDict)."""
    return list(net.values()) if isinstance(net, nn.ModuleDict) else [net]


class GANModel(nn.Module, ABC):
    """The contract (see the module docstring). Subclasses set ``G``, ``D`` and ``loss``
    in ``__init__``; the loop calls ``d_loss``, ``after_d_step``, ``g_loss``."""

    data_kind: ClassVar[DataKind]
    built_args: ClassVar[tuple[str, ...]] = ("generator", "discriminator")
    # Keys of the model's YAML that build_nets reads and the constructor does not take.
    build_options: ClassVar[tuple[str, ...]] = ()

    G: nn.Module
    D: nn.Module
    augment: Augmentation | None  # what D's inputs go through (None: nothing); a submodule, so checkpointed
    # What an EMA copy of G recomputes its BatchNorm statistics on (engine/ema.py):
    # ``calibration_inputs(device)`` -> batches of G's inputs; None: the copy takes G's.
    calibration_inputs: Callable[[torch.device], list[tuple]] | None = None

    def __init__(self) -> None:
        super().__init__()
        # An instance attribute, not a class one: nn.Module keeps a submodule assigned later
        # in _modules, which a class attribute of the same name would shadow.
        self.augment = None

    # -- construction ----------------------------------------------------------------
    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Checks of the YAML's own keys that need no data (``options``: the model node
        without its generator and discriminator). Raises ``OptionError``."""

    @classmethod
    def check_data(cls, spec, options: Mapping[str, Any]) -> None:
        """Refuse data this model cannot train on (``spec``: a ``DataSpec``)."""
        if spec.pairing != cls.data_kind:
            raise UserError(
                f"this model trains on {DATA_KINDS[cls.data_kind]}, but {spec.name or 'the data'} "
                f"holds {DATA_KINDS[spec.pairing]}: choose a matching data= or model="
            )

    @classmethod
    @abstractmethod
    def build_nets(
        cls, make_generator: NetFactory, make_discriminator: NetFactory, spec, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The constructor's arguments named in ``built_args``, made for data of ``spec``."""

    # -- one step --------------------------------------------------------------------
    @abstractmethod
    def d_loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """D's loss on one batch and its logged parts (``loss/d`` among them)."""

    @abstractmethod
    def g_loss(self, batch: Batch) -> tuple[torch.Tensor, Logs]:
        """G's loss on the batch of the last D step and its logged parts (``loss/g``)."""

    def after_d_step(self) -> None:
        """After every D update: the loss's constraint on D's weights (WGAN's clipping)."""
        for D in leaf_nets(self.D):
            self.loss.constrain(D)

    def callable_nets(self) -> list[nn.Module]:
        """Every net the model calls (G's, then D's): what the fast path may compile."""
        return leaf_nets(self.G) + leaf_nets(self.D)

    def twice_differentiated(self) -> list[nn.Module]:
        """The nets whose graphs are differentiated twice: D's, when a gradient penalty or
        R1 differentiates D's output with respect to its input inside D's loss."""
        return leaf_nets(self.D) if self.loss.gp_weight or self.loss.r1_weight else []

    # -- samples and validation ----------------------------------------------------
    @abstractmethod
    def fixed_inputs(self, num_samples: int, seed: int, source) -> Batch:
        """What every sample grid is drawn from, taking nothing from the training RNG."""

    @abstractmethod
    def sample_grid(self, fixed: Batch, generator: nn.Module | None = None) -> tuple[torch.Tensor, int]:
        """The grid's images and its row length; ``generator``: another copy of G (the EMA)."""

    def validation(self, source, batch_size: int) -> Callable[[], Iterable[Batch]] | None:
        """Held-out batches for ``validate`` at each sample grid, or None."""
        return None

    def validate(self, batches: Iterable[Batch], generator: nn.Module | None = None) -> dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} has no validation")

    # -- quality -----------------------------------------------------------------------
    @classmethod
    def evaluator(cls, eval_cfg, source, options: Mapping[str, Any], device: torch.device, seed: int) -> Evaluator:
        """Sample-quality metrics during training (``eval.every`` > 0)."""
        raise OptionError(
            "every",
            f"every > 0 scores the samples of image GANs during training; {cls.__name__} "
            f"logs its validation metrics at each sample grid "
            f"instead: set every=0",
        )

    @classmethod
    @abstractmethod
    def evaluate(
        cls, generator: nn.Module, source, eval_cfg, options: Mapping[str, Any], device: torch.device, seed: int
    ) -> dict:
        """``gantrain-eval``: a report (``metrics``, ``floor``, ``protocol``) of a trained G."""

    # -- the trained generator -----------------------------------------------------
    @classmethod
    @abstractmethod
    def generator_info(cls, options: Mapping[str, Any], spec: Mapping[str, Any]) -> GeneratorInfo:
        """What the G of a run with these options and this data spec maps."""

    @classmethod
    def translator(
        cls, generator: nn.Module, direction: str, options: Mapping[str, Any], seed: int = 0
    ) -> Callable[..., torch.Tensor]:
        """``images -> images`` in ``direction``, as at test time (translators only)."""
        raise NotImplementedError(f"{cls.__name__} does not translate images")
