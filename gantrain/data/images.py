"""Reading image files from user folders, whatever they hold.

Folders collected by hand hold surprises: grey, palette, RGBA, CMYK and 16-bit images
side by side, files that are not images at all, and truncated downloads. Every folder
dataset reads through here:

* ``scan`` runs once, before training: it opens and verifies every file (PIL's
  ``verify`` checks the structure without decoding the pixels) and drops the bad ones,
  counting them, or stops at the first with ``on_bad_file=fail``. An error deep
  inside an epoch, in a worker process, is what this avoids.
* ``read`` decodes one file into 8-bit grey or RGB: 16-bit images are scaled (PIL's
  own conversion clips them, turning most of them white), transparent images are laid
  over white (dropping alpha would show whatever colour the transparent pixels hold),
  CMYK and palette images are converted.
* A file that passes the scan but still fails to decode (a truncated JPEG) is replaced
  by the next readable file of the dataset, with a warning naming it (or stops the run
  with ``fail``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from gantrain.errors import OptionError, UserError

log = logging.getLogger("gantrain")

OnBadFile = Literal["skip", "fail"]
ON_BAD_FILE = ("skip", "fail")
# What PIL raises for files it cannot identify, truncated files, broken structures.
READ_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)
T = TypeVar("T")


class BadFileError(OptionError):
    """A file that stopped a dataset with ``on_bad_file=fail``. It is raised in DataLoader
    worker processes too, and torch rebuilds a worker's exception in the main process as
    ``type(exc)(text)``, ``text`` the whole worker traceback; so this error is built from
    its message alone, and keeps that message's last line (``UserError`` does the same
    for itself)."""

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__module__}.{type(self).__qualname__}: "
        if message.startswith(f"Caught {type(self).__name__}") and marker in message:
            message = message.rsplit(marker, 1)[-1]
        super().__init__("on_bad_file", message)


def image_extensions() -> tuple[str, ...]:
    """The file extensions torchvision's folder datasets read as images. torchvision is
    imported here, when a folder is scanned, not with the module: the config check
    resolves the data builders, and a config error must not pay for torchvision's import."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return IMG_EXTENSIONS


def extensions_text() -> str:
    """``image_extensions()`` for a message: ``.bmp, .jpeg, ...``."""
    return ", ".join(sorted(image_extensions()))


def check_on_bad_file(on_bad_file: str) -> None:
    if on_bad_file not in ON_BAD_FILE:
        raise OptionError(
            "on_bad_file",
            f"on_bad_file={on_bad_file!r} is not known: use skip (leave unreadable "
            f"files out, counted) or fail (stop at the first)",
        )


def _reason(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def scan(files: list[Path], on_bad_file: OnBadFile, where: str) -> list[Path]:
    """The files that open as images; the others are left out and counted (``skip``) or
    the first one stops the run (``fail``)."""
    check_on_bad_file(on_bad_file)
    good, bad = [], []
    for path in files:
        try:
            with Image.open(path) as image:
                image.verify()
            good.append(path)
        except READ_ERRORS as exc:
            if on_bad_file == "fail":
                raise BadFileError(
                    f"cannot read {path} ({_reason(exc)}): remove or replace the file, or "
                    f"set on_bad_file=skip to leave unreadable files out"
                ) from None
            bad.append((path, _reason(exc)))
    if bad:
        log.warning(
            "%s: skipped %d unreadable file(s) of %d, e.g. %s (%s)", where, len(bad), len(files), bad[0][0], bad[0][1]
        )
    if not good:
        raise UserError(
            f"no readable images in {where} ({len(bad)} unreadable file(s), e.g. {bad[0][0]}): "
            f"point at a folder of images"
        )
    return good


def _sixteen_bit_to_8(image: Image.Image) -> Image.Image:
    """16-bit grey (mode I;16 or I) -> 8-bit, scaling 0..65535 to 0..255."""
    pixels = np.asarray(image, dtype=np.float64)
    top = 65535.0 if pixels.max() > 255 or image.mode.startswith("I;16") else 255.0
    return Image.fromarray(np.clip(np.round(pixels * (255.0 / top)), 0, 255).astype(np.uint8), mode="L")


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Any PIL image -> 8-bit ``mode`` ("L" or "RGB")."""
    if image.mode.startswith("I"):
        image = _sixteen_bit_to_8(image)
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.asarray(image) * 255.0, 0, 255).astype(np.uint8), mode="L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return image.convert(mode)


def read(path: Path, mode: str) -> Image.Image:
    """One file, decoded and closed, as 8-bit ``mode``."""
    with Image.open(path) as image:
        image.load()
        return to_mode(image, mode)


class FallbackReader:
    """``read`` for a dataset's files: a file that fails to decode is replaced by the next
    readable one (``skip``; warned once per file in each process) or stops (``fail``)."""

    def __init__(self, files: list[Path], on_bad_file: OnBadFile) -> None:
        check_on_bad_file(on_bad_file)
        self.files, self.on_bad_file = files, on_bad_file
        self._warned: set[Path] = set()

    def __call__(self, index: int, decode: Callable[[Path], T]) -> tuple[T, int]:
        """``decode`` of file ``index``, or of the next file that decodes; and that file's index."""
        for offset in range(len(self.files)):
            used = (index + offset) % len(self.files)
            path = self.files[used]
            try:
                return decode(path), used
            except READ_ERRORS as exc:
                if self.on_bad_file == "fail":
                    raise BadFileError(
                        f"cannot decode {path} ({_reason(exc)}): remove or replace the file, or set on_bad_file=skip"
                    ) from None
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("cannot decode %s (%s): using the next image instead", path, _reason(exc))
        raise UserError(f"none of the {len(self.files)} images could be decoded: check the folder")
