"""torch-fidelity's InceptionV3 (the TensorFlow FID graph's port), loaded through
torchmetrics' ``NoTrainInceptionV3`` for ``inception.py``: from a given weights file, or
from the ``torch.hub`` cache (downloaded there first when absent). Every way of failing to
get usable weights (no such file, not those weights, an offline download, a damaged
cache) is one ``OptionError`` that says which file is needed, from where, and where to put it.
"""

from __future__ import annotations

import http.client
import os
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from gantrain.errors import OptionError, UserError

_FEATURES = ["2048", "logits_unbiased"]  # pool features for FID/KID, logits for IS


def fidelity_module():
    """torch-fidelity's Inception module, or a UserError saying how to install it."""
    try:
        import torch_fidelity.feature_extractor_inceptionv3 as module
    except ImportError as error:
        message = "FID/KID/IS need torch-fidelity and scipy: pip install 'torch-fidelity>=0.3' 'scipy>=1.9'"
        raise UserError(message) from error
    return module


def weights_url() -> str:
    """Where torch-fidelity downloads its InceptionV3 weights from."""
    return fidelity_module().URL_INCEPTION_V3


def weights_filename() -> str:
    return os.path.basename(urlparse(weights_url()).path)


def cached_weights_path() -> Path:
    """Where ``torch.hub`` keeps the downloaded weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_filename()


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or "no details"
    return f"{type(error).__name__}: {text[:160]}"


def load_inception(weights_path: str | os.PathLike | None = None, option: str = "weights_path") -> nn.Module:
    """torchmetrics' ``NoTrainInceptionV3`` giving 2048-d pool features and 1008 unbiased logits.

    ``weights_path`` None means torch-fidelity's default weights: read from the torch.hub cache,
    downloaded there first if absent. Any failure to get usable weights is one ``OptionError``
    about ``option``, the name under which the caller took the path (``inception_weights`` for
    the evaluator).
    """
    fidelity_module()
    from torchmetrics.image.fid import NoTrainInceptionV3

    def build(path: str | None) -> nn.Module:
        return NoTrainInceptionV3(
            name="inception-v3-compat", features_list=list(_FEATURES), feature_extractor_weights_path=path
        )

    name, url = weights_filename(), weights_url()
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise OptionError(
                option,
                f"{option}={weights_path}: no such file; point it at a copy of "
                f"torch-fidelity's InceptionV3 weights {name} (from {url})",
            )
        try:
            return build(str(path))
        except Exception as error:  # unreadable, not a checkpoint, or the wrong network's weights
            message = (
                f"{option}={weights_path} could not be loaded as torch-fidelity's "
                f"InceptionV3 weights ({_reason(error)}); point it at a copy of {name} (from {url})"
            )
            raise OptionError(option, message) from error

    cached = cached_weights_path()
    was_cached = cached.is_file()
    try:
        return build(None)
    except Exception as error:
        if was_cached:
            raise OptionError(
                option,
                f"the cached Inception weights {cached} could not be loaded "
                f"({_reason(error)}); delete that file to download it again, or set "
                f"{option}=/path/to/{name}",
            ) from error
        if isinstance(error, (OSError, http.client.HTTPException)):  # URLError, HTTPError, timeouts, SSL
            raise OptionError(
                option,
                f"could not download the Inception weights {name} from {url} "
                f"({_reason(error)}); fetch that file on a machine with internet, copy it here "
                f"and set {option}=/path/to/{name} (or put it at {cached})",
            ) from error
        raise
