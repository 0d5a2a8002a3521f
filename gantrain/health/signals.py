"""Health signals: numbers that say, during training, whether a GAN run is collapsing.

Per step, on the device, with no host sync (the loop sums the logs there and reads them
back once per log interval):

* ``health/d_acc_real``, ``health/d_acc_fake``: the share of real images D scores as real
  and of fakes it scores as fake, against the loss's decision boundary b (0 for logits and
  the hinge, 1/2 for LSGAN's 0-1 coding). A score exactly at b counts half: a D that cannot
  tell (every score at b) is at 1/2, as chance. A Wasserstein critic has no b; there the
  boundary is the midpoint of the batch's mean real and mean fake scores, so the accuracies
  say how well the critic separates the two, not where its scores drift.
* ``health/rt``: ADA's overfitting statistic r_t = E[sign(D(x_real) - b)] (Karras et al.,
  2020, "Training Generative Adversarial Networks with Limited Data", sec. 3, Eq. 1): 0 at
  chance, 1 when D is sure of every real image; only where the loss has a boundary. With
  the half-weighted ties above, r_t = 2 * d_acc_real - 1.
* ``grad_norm``, ``weight_norm``: global L2 norms, ``sqrt(sum_p ||p||^2)``, of gradients and
  weights (the loop logs them as ``health/grad_g``, ``grad_d``, ``weight_g``, ``weight_d``).

At the log interval (a host sync is allowed there), ``SampleProbe``:

* ``health/diversity``: the mean pairwise L2 distance between the features of a fixed batch
  of samples (fixed noise, the same at every log point) divided by the same for a fixed batch
  of real images: about 1 when the samples spread like the data, towards 0 under mode collapse
  (every z mapped to a few images). Features: the judge's 128-d penultimate layer
  (``metrics/judge.py``) when the run has one, else D's: the input of the last layer with
  weights that D runs (its output layer), which is what D's decision is a linear function of.
  D's feature space moves as D trains, so the real images' features are recomputed each time;
  the judge's are computed once.
* ``health/class_entropy`` (labelled data and a judge): the entropy of the histogram of the
  judge's classes of those samples over log(K): 1 when every class is drawn equally often,
  0 when all samples are one class.
* ``health/d_acc_heldout``: D's accuracy on real images it never trained on (ADA's paper,
  Fig. 1: D's outputs on held-out images fall away from those on training images as it
  overfits); compared with ``d_acc_real``.

Translators (pix2pix, CycleGAN) get no probe signals: their output is a function of the input
image, so the spread of a batch of outputs measures the inputs, not the generator; and their
Ds judge stacked pairs (pix2pix) or one domain each (CycleGAN), not the plain images a probe
holds. Their per-step signals (D's accuracies, r_t, the norms) are logged as for every model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils import parametrize

# -- per step, on the device ----------------------------------------------------------


def d_accuracy_logs(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, boundary: float | None
) -> dict[str, torch.Tensor]:
    """``health/d_acc_real``, ``health/d_acc_fake`` and (with a ``boundary``) ``health/rt``
    of one D step, as 0-dim float32 tensors on the logits' device (see the module). Patch
    maps count patch by patch."""
    real, fake = real_logits.detach().float(), fake_logits.detach().float()
    if boundary is None:  # a Wasserstein critic: the midpoint between the two means
        middle = (real.mean() + fake.mean()) / 2
        return {
            "health/d_acc_real": (1 + torch.sign(real - middle)).mean() / 2,
            "health/d_acc_fake": (1 - torch.sign(fake - middle)).mean() / 2,
        }
    real_sign = torch.sign(real - boundary)  # +1 judged real, -1 judged fake, 0 on the boundary
    return {
        "health/d_acc_real": (1 + real_sign).mean() / 2,
        "health/d_acc_fake": (1 - torch.sign(fake - boundary)).mean() / 2,
        "health/rt": real_sign.mean(),
    }


def _global_norm(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    if not tensors:
        return torch.zeros((), device=device)
    # One kernel per device and dtype group, no .item(): the norms stay on the device.
    norms = torch._foreach_norm(tensors)
    return torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))


def grad_norm(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """The global L2 norm of the parameters' gradients (those that have one), 0-dim on the
    parameters' device; 0 when none has a gradient. Equal to what
    ``torch.nn.utils.clip_grad_norm_`` returns, without clipping and without a host sync."""
    params = list(params)
    device = params[0].device if params else torch.device("cpu")
    return _global_norm([p.grad.detach() for p in params if p.grad is not None], device)


def weight_norm(net: nn.Module) -> torch.Tensor:
    """The global L2 norm of ``net``'s parameters (a spectrally normalised layer's stored,
    unnormalised weight: that is what grows when training diverges), 0-dim, on the device."""
    params = list(net.parameters())
    device = params[0].device if params else torch.device("cpu")
    return _global_norm([p.detach() for p in params], device)


# -- at the log interval: SampleProbe ---------------------------------------------------


def mean_pairwise_distance(features: torch.Tensor) -> torch.Tensor:
    """The mean L2 distance over all pairs of rows of ``features`` (flattened per sample)."""
    return torch.pdist(features.flatten(1).float()).mean()


def normalised_entropy(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The entropy of the histogram of ``classes`` (indices in ``range(num_classes)``) over
    log(num_classes): 1 for a uniform histogram, 0 for a single class."""
    p = torch.bincount(classes.long().flatten(), minlength=num_classes).double()
    p = p / p.sum()
    return -(p * p.clamp_min(1e-300).log()).sum() / math.log(num_classes)


def _weight_layer(module: nn.Module) -> bool:
    """A layer that maps features with weights: not a norm layer (its input is no more a
    feature than its output), not an embedding (it reads labels, not images)."""
    if isinstance(module, (nn.Embedding, nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
        return False
    if isinstance(module, parametrize.ParametrizationList):  # holds a parametrised layer's weight
        return False
    return parametrize.is_parametrized(module) or any(True for _ in module.parameters(recurse=False))


@contextmanager
def _untouched(net: nn.Module, training: bool) -> Iterator[None]:
    """``net`` in train or eval mode, and afterwards in its own mode with every buffer as it
    was (BatchNorm's running statistics, spectral normalisation's u and v): a probe changes
    nothing that training or a checkpoint sees."""
    saved = [buffer.detach().clone() for buffer in net.buffers()]
    was_training = net.training
    net.train(training)
    try:
        with torch.no_grad():
            yield
    finally:
        net.train(was_training)
        with torch.no_grad():
            for buffer, value in zip(net.buffers(), saved):
                buffer.copy_(value)


class SampleProbe:
    """The health signals of a fixed batch of samples, at each log point (see the module).

    ``model``: the GANModel; ``real_images``: real training images in [-1, 1] (the first
    ``num`` are used), with ``real_labels`` when the model is conditional (its D reads them);
    ``judge``: the run's classifier judge (``metrics/judge.py``: ``features``, ``classify``)
    or None; ``num_classes``: the data's class count (0: unlabelled); ``heldout``: real images
    out of the training subset, or None (pass a fixed subset of a few hundred: all are scored),
    with ``heldout_labels`` when conditional; ``loss``: the run's loss (its decision boundary);
    ``num``, ``seed``: the size and seed of the fixed noise batch."""

    def __init__(
        self,
        model,
        real_images: torch.Tensor,
        judge: nn.Module | None,
        num_classes: int,
        heldout: torch.Tensor | None,
        loss,
        num: int = 64,
        seed: int = 0,
        *,
        real_labels: torch.Tensor | None = None,
        heldout_labels: torch.Tensor | None = None,
    ) -> None:
        self.model, self.judge, self.loss = model, judge, loss
        self.num, self.num_classes = num, num_classes
        # The generator contract: noise models sample from fixed_inputs; translators get no probe.
        self.noise = model.data_kind == "none"
        self.fixed = model.fixed_inputs(num, seed, None) if self.noise else None
        # What fixed_inputs draws for a conditional model carries the classes: its D reads labels.
        self.conditional = self.fixed is not None and "y" in self.fixed
        self.real = real_images[:num].detach().cpu()
        self.real_labels = None if real_labels is None else real_labels[:num].detach().cpu()
        self.heldout = None if heldout is None or not len(heldout) else heldout.detach().cpu()
        self.heldout_labels = None if heldout_labels is None else heldout_labels.detach().cpu()
        self._judge_real_spread: float | None = None  # the judge is fixed: its real features once

    def __call__(self, generator: nn.Module) -> dict[str, float]:
        """``health/diversity``, ``health/class_entropy``, ``health/d_acc_heldout``: those it
        can compute. ``generator``: the G to sample (the loop's EMA copy, or G)."""
        if not self.noise:
            return {}
        D = self.model.D
        device = next(D.parameters()).device
        # Sampling draws nothing from the training RNG, and the augmentation's draws for the
        # held-out accuracy come from a fork that is thrown away.
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
            fixed = {key: value.to(device) for key, value in self.fixed.items()}
            samples, _ = self.model.sample_grid(fixed, generator)
            samples = samples.detach().float().clamp(-1, 1)
            labels = fixed.get("y")
            real = self.real.to(device)
            real_labels = None if self.real_labels is None else self.real_labels.to(device)
            values = self._judged(samples, real) if self.judge is not None else self._in_d(samples, labels, real)
            heldout = self._heldout_accuracy(samples, labels, real, real_labels)
            if heldout is not None:
                values["health/d_acc_heldout"] = heldout
        return values

    # -- diversity and classes --------------------------------------------------------
    def _judged(self, samples: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
        from gantrain.metrics.judge import judge_outputs

        features, probabilities = judge_outputs(self.judge, samples)
        if self._judge_real_spread is None:
            self._judge_real_spread = float(mean_pairwise_distance(judge_outputs(self.judge, real)[0]))
        values = _ratio(float(mean_pairwise_distance(features)), self._judge_real_spread)
        if self.num_classes > 1:
            classes = probabilities.argmax(1)
            values["health/class_entropy"] = float(normalised_entropy(classes, self.num_classes))
        return values

    def _in_d(self, samples: torch.Tensor, labels: torch.Tensor | None, real: torch.Tensor) -> dict[str, float]:
        if self.conditional and self.real_labels is None:
            return {}  # a conditional D cannot place real images without their labels
        real_labels = None if self.real_labels is None else self.real_labels.to(real.device)
        fake_spread = mean_pairwise_distance(self.d_features(samples, labels))
        real_spread = mean_pairwise_distance(self.d_features(real, real_labels))
        return _ratio(float(fake_spread), float(real_spread))

    def d_features(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """D's features of ``images``: the input of the last layer with weights that D runs,
        caught by forward hooks; D in eval mode (BatchNorm's running statistics: in train mode
        each batch would be rescaled to unit spread, which hides a collapse), without the
        augmentation. ``D.forward`` is called rather than D: a compiled D (``Module.compile``)
        would run its compiled graph, which ignores hooks registered after compilation."""
        D = self.model.D
        seen: list[torch.Tensor] = []
        layers = [module for module in D.modules() if _weight_layer(module)]
        handles = [layer.register_forward_hook(lambda _m, args, _out: seen.append(args[0])) for layer in layers]
        try:
            with _untouched(D, training=False):
                D.forward(images, labels)
        finally:
            for handle in handles:
                handle.remove()
        if not seen:
            raise ValueError(f"{type(D).__name__} ran no layer with weights: no features to probe")
        return seen[-1].detach().float()

    # -- held-out accuracy --------------------------------------------------------------
    def _scores(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D's raw scores as in its own step: train mode (batch statistics), through the
        model's augmentation, labels for a conditional D; buffers left as they were. In chunks
        of about ``num`` (never one image alone: a BatchNorm cannot normalise one sample)."""
        D, augment = self.model.D, self.model.augment
        chunks = max(1, math.ceil(len(images) / self.num))
        scores = []
        with _untouched(D, training=True):
            for k, part in enumerate(torch.tensor_split(images, chunks)):
                part_labels = None if labels is None else torch.tensor_split(labels, chunks)[k]
                x = augment(part) if augment is not None else part
                # One score per image (a patch map's mean, as the penalties take it).
                scores.append(D.forward(x, part_labels).float().reshape(len(x), -1).mean(1))
        return torch.cat(scores)

    def _heldout_accuracy(
        self,
        samples: torch.Tensor,
        labels: torch.Tensor | None,
        real: torch.Tensor,
        real_labels: torch.Tensor | None,
    ) -> float | None:
        if self.heldout is None or (self.conditional and self.heldout_labels is None):
            return None
        device = samples.device
        heldout_labels = None if self.heldout_labels is None else self.heldout_labels.to(device)
        scores = self._scores(self.heldout.to(device), heldout_labels)
        boundary = self.loss.decision_boundary
        if boundary is None:  # Wasserstein: the midpoint between training reals and the samples
            if self.conditional and real_labels is None:
                return None
            boundary = (self._scores(real, real_labels).mean() + self._scores(samples, labels).mean()) / 2
        return float((1 + torch.sign(scores - boundary)).mean() / 2)


def _ratio(fake_spread: float, real_spread: float) -> dict[str, float]:
    """``health/diversity``, or nothing when the real images do not spread at all."""
    return {"health/diversity": fake_spread / real_spread} if real_spread > 0 else {}
