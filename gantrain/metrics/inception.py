"""FID, KID and IS of generated images, computed by torchmetrics on torch-fidelity's Inception.

- FID, Fréchet Inception Distance (Heusel et al., 2017, "GANs Trained by a Two Time-Scale
  Update Rule Converge to a Local Nash Equilibrium"): the Fréchet distance between Gaussians
  fitted to the 2048-d Inception pool features of real and of generated images. Lower is better.
- KID, Kernel Inception Distance (Bińkowski et al., 2018, "Demystifying MMD GANs"): the unbiased
  squared MMD between the same features under the cubic polynomial kernel (x.y / 2048 + 1)^3,
  averaged over 100 random subsets (mean and standard deviation over the subsets; each subset draws
  m real and m generated images without replacement). Lower is better; unlike FID it has no bias
  that depends on N (the estimator is unbiased at every m, so the mean does not depend on m either;
  its spread does).
- IS, Inception Score (Salimans et al., 2016, "Improved Techniques for Training GANs"):
  exp(E KL(p(y|x) || p(y))) over the Inception class posteriors of the generated images only,
  per split (mean and standard deviation over splits). Higher is better.
- On request (``prdc``): precision, recall, density and coverage of the same pool features
  (Kynkäänniemi et al., 2019; Naeem et al., 2020), written in ``prdc.py``.

No Inception code lives here: the network is torch-fidelity's port of the TensorFlow FID Inception
(2015-12-05 graph), wrapped by torchmetrics (``NoTrainInceptionV3``), and the three statistics are
torchmetrics' ``FrechetInceptionDistance``, ``KernelInceptionDistance`` and ``InceptionScore``. To
run the network once per image and load its weights once, one extractor yields both the pool
features and the logits, and the metrics receive those features through a pass-through feature
module (torchmetrics' documented custom-extractor path). The extractor resizes the images to
299x299 itself.

KID's subset size m is ``min(1000, N // 2)`` with N the smaller of the two image counts. 1000 is
the size of the KID paper's code (``polynomial_mmd_averages`` in Bińkowski's MMD-GAN repository),
of torch-fidelity and of torchmetrics (100 subsets there and here). Those libraries refuse N < 1000
(clean-fid takes ``min(1000, N)``); taking m = N would draw the very same set every time, so the
standard deviation over subsets would be 0 and say nothing. With m = N // 2 the subsets differ
(two of them share half their images on average) and the standard deviation measures how
much KID moves with the images it is computed on; from N = 2000 on, m is the usual 1000. KID
therefore needs N >= 4 (an unbiased MMD needs m >= 2).

Quantisation: [-1, 1] floats become uint8 by rounding, ``floor(255 x' + 0.5)`` with
``x' = (x + 1) / 2`` clamped to [0, 1], as ``torchvision.utils.save_image`` and PIL do, so scoring
a tensor and scoring the PNG written from it agree. torchmetrics' own ``normalize=True`` truncates
(``(x' * 255).byte()``): that moves every generated pixel down by half a level on average, and even
a real uint8 image read into [-1, 1] and back loses a level on 63 of the 256 values to float
rounding (``p / 127.5 - 1`` comes back a hair below ``p``). Rounding returns every real pixel exactly.

Protocol caveats: these numbers are comparable only between runs that share the number of images
(FID is biased upwards at small N, IS depends on N and the number of splits), the preprocessing
(grey repeated to RGB, resize method, uint8 quantisation), KID's subset size and the very same
weights file. Numbers from other code bases (TTUR, pytorch-fid, clean-fid, ...) or from a different
N are not comparable.
``inception_metrics`` returns a ``protocol`` entry recording all of that next to the numbers.

Without a weights path, torch-fidelity fetches its weights file through ``torch.hub`` into
``$TORCH_HOME/hub/checkpoints/`` (``~/.cache/torch/hub/checkpoints/`` by default); once it is there
no network is needed. Offline machines pass a copy of that file as ``weights_path``
(``inception_weights.py`` loads the network and says what went wrong in one line).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version

import torch
from torch import nn

from gantrain.errors import UserError
from gantrain.metrics.inception_weights import fidelity_module, load_inception

METRICS = ("fid", "kid", "is")  # the default set
ON_REQUEST = ("prdc",)  # precision, recall, density, coverage on the pool features (metrics/prdc.py)
KID_SUBSETS = 100  # torchmetrics' and torch-fidelity's default number of random subsets
KID_MAX_SUBSET = 1000  # the subset size of the KID paper's code, torchmetrics and torch-fidelity
_CHUNK = 50  # images per Inception forward pass (299x299 activations are large)


class _Precomputed(nn.Module):
    """Pass-through 'feature extractor': the shared Inception has already computed the features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features  # FrechetInceptionDistance reads it instead of probing

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def choose_kid_subset_size(n_real: int, n_fake: int, largest: int = KID_MAX_SUBSET) -> int:
    """KID's subset size: ``min(largest, min(n_real, n_fake) // 2)``, below both N (see the module
    docstring for why); a ``UserError`` when that is under 2, the least an unbiased MMD needs."""
    size = min(largest, min(n_real, n_fake) // 2)
    if size < 2:
        raise UserError(
            f"KID needs at least 4 real and 4 generated images (subsets of N // 2 >= 2), got "
            f"{n_real} real and {n_fake} generated; evaluate on more images"
        )
    return size


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 by rounding (half up, as ``torchvision.utils.save_image``), not truncation."""
    unit = ((images.float() + 1) / 2).clamp(0, 1)
    return (unit * 255 + 0.5).floor().clamp(0, 255).to(torch.uint8)


def _to_uint8_rgb(images: torch.Tensor, which: str) -> torch.Tensor:
    """[-1, 1] floats, (N, 1|3, H, W) -> (N, 3, H, W) uint8, rounded (``to_uint8``)."""
    if not torch.is_tensor(images) or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise UserError(
            f"Inception metrics need {which} image batches shaped (N, 1 or 3, H, W), got {shape}; "
            f"use a grey or RGB dataset"
        )
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return to_uint8(images)


@torch.no_grad()
def _extract(
    extractor: nn.Module, batches: Iterable[torch.Tensor], which: str, device: torch.device, logits: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pool features (and logits) of every image in ``batches``, on the CPU."""
    forward = getattr(extractor, "_torch_fidelity_forward", None)  # torchmetrics' resize + forward
    if forward is None:  # older torchmetrics: torch-fidelity's own forward (TF1-compatible resize)
        forward = lambda x: fidelity_module().FeatureExtractorInceptionV3.forward(extractor, x)  # noqa: E731
    pools, logit_parts = [], []
    for batch in batches:
        images = _to_uint8_rgb(batch, which)
        for start in range(0, len(images), _CHUNK):
            pool, logit = forward(images[start : start + _CHUNK].to(device))
            pools.append(pool.float().cpu())
            if logits:
                logit_parts.append(logit.float().cpu())
    pool = torch.cat(pools) if pools else torch.empty(0, 2048)
    if not logits:
        return pool, None
    return pool, torch.cat(logit_parts) if logit_parts else torch.empty(0, 1008)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def inception_metrics(
    real: Iterable[torch.Tensor],
    fake: Iterable[torch.Tensor],
    metrics: Sequence[str] = METRICS,
    weights_path: str | None = None,
    device: str | torch.device = "cpu",
    kid_max_subset_size: int = KID_MAX_SUBSET,
    is_splits: int = 10,
    seed: int = 0,
    option: str = "weights_path",
) -> dict:
    """FID, KID and/or IS between ``real`` and ``fake`` image batches.

    ``real`` and ``fake`` yield float batches in [-1, 1], (N, C, H, W) with C = 1 (repeated to
    RGB) or 3; ``real`` is not read when only IS is asked for. Returns the requested subset of
    ``fid``, ``kid_mean``, ``kid_std``, ``is_mean``, ``is_std`` (and with ``prdc`` asked for,
    ``precision``, ``recall``, ``density``, ``coverage``: ``metrics/prdc.py``) and ``protocol``, a dict
    recording what the numbers are comparable with. KID's subsets hold ``choose_kid_subset_size(
    n_real, n_fake, kid_max_subset_size)`` images: at most ``kid_max_subset_size``, at most half
    of N. KID subsets and IS splits are drawn with ``seed`` (the global RNG is left untouched), so
    a rerun gives the same numbers. ``option``: the caller's name for ``weights_path``, which
    the errors about the weights name (``load_inception``).
    """
    wanted = _check_metrics(metrics)
    if kid_max_subset_size < 2:
        raise UserError(f"the KID subset size must be at least 2, got {kid_max_subset_size}")
    if is_splits < 1:
        raise UserError(f"the number of IS splits must be at least 1, got {is_splits}")
    device = torch.device(device)
    extractor = load_inception(weights_path, option).to(device)

    need_real = bool(wanted & {"fid", "kid", "prdc"})
    real_pool = _extract(extractor, real, "real", device, logits=False)[0] if need_real else None
    fake_pool, fake_logits = _extract(extractor, fake, "generated", device, logits="is" in wanted)
    n_real = len(real_pool) if real_pool is not None else 0
    n_fake = len(fake_pool)
    if n_fake < 2 or (need_real and n_real < 2):
        raise UserError(
            f"Inception metrics need at least 2 real and 2 generated images, got {n_real} real and "
            f"{n_fake} generated; evaluate on more images"
        )
    kid_subset = choose_kid_subset_size(n_real, n_fake, kid_max_subset_size) if "kid" in wanted else 0

    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.inception import InceptionScore
    from torchmetrics.image.kid import KernelInceptionDistance

    result: dict = {}
    protocol: dict = {
        "n_real": n_real,
        "n_fake": n_fake,
        "feature_extractor": "torch-fidelity's InceptionV3 port of the TensorFlow FID Inception (2015-12-05): "
        "2048-d pool features for FID/KID, 1008 unbiased logits for IS",
        "weights": str(weights_path) if weights_path is not None else "torch-fidelity default",
        "input": "[-1, 1] -> [0, 1] (clamped) -> uint8 by rounding, floor(x * 255 + 0.5) as torchvision "
        "save_image (not torchmetrics' truncating (x * 255).byte())",
        "grey_to_rgb": "1-channel images repeated to 3 channels",
        "resize": "to 299x299 inside the feature extractor, bilinear"
        + (
            " with antialiasing (torchmetrics default)"
            if getattr(extractor, "use_antialias", False)
            else " (TensorFlow 1.x compatible, torch-fidelity)"
        ),
        "seed": seed,
        "torchmetrics": _version("torchmetrics"),
        "torch_fidelity": _version("torch-fidelity"),
    }
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        # KID and IS warn that they keep every feature in memory: we already do, deliberately.
        warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
        torch.manual_seed(seed)  # torchmetrics draws KID subsets and IS splits from the CPU RNG
        if "fid" in wanted:
            fid = FrechetInceptionDistance(feature=_Precomputed(2048), normalize=False).to(device)
            fid.update(real_pool.to(device), real=True)
            fid.update(fake_pool.to(device), real=False)
            result["fid"] = float(fid.compute())
        if "kid" in wanted:
            kid = KernelInceptionDistance(
                feature=_Precomputed(2048), subsets=KID_SUBSETS, subset_size=kid_subset, normalize=False
            ).to(device)
            kid.update(real_pool.to(device), real=True)
            kid.update(fake_pool.to(device), real=False)
            mean, std = kid.compute()
            result["kid_mean"], result["kid_std"] = float(mean), float(std)
            protocol.update(
                kid_subset_size=kid_subset,
                kid_subsets=KID_SUBSETS,
                kid_subset_rule=f"min({kid_max_subset_size}, N // 2) images per subset, N = "
                f"min(n_real, n_fake), drawn without replacement; std over "
                f"the {KID_SUBSETS} subsets (population)",
                kid_kernel="polynomial (x.y / 2048 + 1)^3",
            )
        if "is" in wanted:
            inception_score = InceptionScore(feature=_Precomputed(1008), splits=is_splits, normalize=False).to(device)
            inception_score.update(fake_logits.to(device))
            mean, std = inception_score.compute()
            result["is_mean"], result["is_std"] = float(mean), float(std)
            per_split = -(-n_fake // is_splits)  # torch.chunk: ceil(N / splits) images a split
            protocol.update(is_splits=is_splits, is_splits_used=-(-n_fake // per_split), is_images_per_split=per_split)
        if "prdc" in wanted:
            result.update(_prdc(real_pool, fake_pool, device, protocol))
    result["protocol"] = protocol
    return result


def _prdc(real_pool: torch.Tensor, fake_pool: torch.Tensor, device: torch.device, protocol: dict) -> dict:
    """PRDC on the 2048-d pool features; skipped (the protocol says why) below its least N."""
    from gantrain.metrics import prdc

    least = prdc.least_samples()
    if min(len(real_pool), len(fake_pool)) < least:
        protocol["prdc"] = f"skipped: needs at least {least} real and {least} generated images"
        return {}
    protocol["prdc"] = prdc.protocol()
    return prdc.prdc(real_pool, fake_pool, device=device)


def _check_metrics(metrics: Sequence[str]) -> set[str]:
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    wanted = {str(name).lower() for name in names}
    unknown = sorted(wanted - set(METRICS + ON_REQUEST))
    if unknown:
        known = ", ".join(METRICS + ON_REQUEST)
        raise UserError(f"unknown Inception metric(s) {', '.join(unknown)}: choose from {known}")
    if not wanted:
        raise UserError(f"no Inception metric asked for: choose from {', '.join(METRICS)}")
    return wanted
