#!/usr/bin/env python3
"""Download a pix2pix or CycleGAN dataset archive and unpack it where gantrain reads it.

Sources: the public archives that the pytorch-CycleGAN-and-pix2pix download scripts use,
    pix2pix:  http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/<name>.tar.gz
    CycleGAN: http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/<name>.zip
Result: ``<root>/<name>/{train,val,test}/`` with A|B images side by side (pix2pix; read
by data=facades or data=paired_folder), or ``<root>/<name>/{trainA,trainB,testA,testB}/``
(CycleGAN; data=unpaired_folder). facades and maps exist in both kinds and unpack to
the same folder name: use a different --root for the second one.

    python scripts/download_pix2pix.py facades --root data
    python scripts/download_pix2pix.py horse2zebra --kind cyclegan
    python scripts/download_pix2pix.py facades --url file:///home/me/facades.tar.gz --sha256 HEX

The archive is streamed to ``<root>/<name>.part``, its SHA-256 checked (against --sha256
or KNOWN_SHA256), unpacked into a temporary folder inside root, and renamed into place
only when it has the expected layout, so an interrupted or failed run leaves nothing
half-written. An existing ``<root>/<name>`` is never touched. Errors are one line on
stderr and exit status 2. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

PROG = "download_pix2pix"
BASE_URLS = {
    "pix2pix": "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz",
    "cyclegan": "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip",
}
DATASETS = {
    "pix2pix": ("facades", "cityscapes", "maps", "edges2shoes", "edges2handbags", "night2day"),
    "cyclegan": (
        "horse2zebra",
        "apple2orange",
        "summer2winter_yosemite",
        "monet2photo",
        "cezanne2photo",
        "ukiyoe2photo",
        "vangogh2photo",
        "maps",
        "facades",
        "iphone2dslr_flower",
    ),
}
# SHA-256 of the published archives, keyed by (kind, name). Empty on purpose: this
# script was written without network access, and a digest copied from nowhere would be
# worse than none. When an archive is fetched from the original URL, the script prints
# its digest: record it here (e.g. ("pix2pix", "facades"): "ab12..."), and later
# downloads, from any mirror, are checked against it.
KNOWN_SHA256: dict[tuple[str, str], str] = {}
LAYOUTS = {"pix2pix": ("train",), "cyclegan": ("trainA", "trainB")}  # folders that must hold images
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}
CHUNK = 1 << 20
TIMEOUT_S = 60


class Failure(Exception):
    """What went wrong and how to fix it, printed as one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, like every other error here
        raise Failure(f"{message}; see {PROG} --help")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    names = sorted(set(DATASETS["pix2pix"]) | set(DATASETS["cyclegan"]))
    parser = _Parser(
        prog=PROG,
        description="Download a pix2pix or CycleGAN dataset into <root>/<name>/.",
        epilog=f"datasets: {', '.join(names)}",
    )
    parser.add_argument("name", help="dataset name, e.g. facades or horse2zebra")
    parser.add_argument(
        "--root",
        default=os.environ.get("GANTRAIN_DATA", "data"),
        help="folder that receives <name>/ (default: $GANTRAIN_DATA, else data)",
    )
    parser.add_argument(
        "--kind",
        choices=sorted(BASE_URLS),
        default="pix2pix",
        help="pix2pix (paired, .tar.gz) or cyclegan (unpaired, .zip)",
    )
    parser.add_argument("--url", help="download from here instead (a mirror, or file:///path/to/archive)")
    parser.add_argument("--sha256", help="expected SHA-256 of the archive (64 hex digits)")
    args = parser.parse_args(argv)
    if args.sha256 is not None:
        args.sha256 = args.sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", args.sha256):
            raise Failure(f"--sha256 {args.sha256!r} is not a SHA-256 digest: give 64 hex digits")
    if args.url is None and args.name not in DATASETS[args.kind]:
        other = [k for k in DATASETS if args.name in DATASETS[k]]
        hint = (
            f"it is a {other[0]} set: add --kind {other[0]}"
            if other
            else f"choose one of {', '.join(DATASETS[args.kind])}, or pass --url for another archive"
        )
        raise Failure(f"unknown {args.kind} dataset {args.name!r}: {hint}")
    # The name becomes a folder name: nothing that could point elsewhere.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", args.name):
        raise Failure(f"dataset name {args.name!r} is not a plain folder name: use letters, digits, _ . -")
    return args


def download(url: str, part: Path, hint: str) -> str:
    """Stream ``url`` into ``part``; returns the SHA-256 of what arrived."""
    try:
        out = open(part, "wb")
    except OSError as exc:
        raise Failure(f"cannot write {part} ({exc.strerror}): choose a writable --root") from None
    digest = hashlib.sha256()
    received = 0
    with out:
        try:
            response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
        except urllib.error.HTTPError as exc:
            raise Failure(f"could not download {url} (HTTP {exc.code} {exc.reason}): {hint}") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise Failure(f"could not download {url} ({getattr(exc, 'reason', exc)}): {hint}") from None
        with response:
            length = response.headers.get("Content-Length")
            print(f"downloading {url} ({_size(int(length)) if length else 'size unknown'}) to {part}")
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise Failure(f"download of {url} broke off after {_size(received)} ({exc}): {hint}") from None
                if not chunk:
                    break
                try:
                    out.write(chunk)
                except OSError as exc:
                    raise Failure(
                        f"cannot write {part} ({exc.strerror}): free some space or choose another --root"
                    ) from None
                digest.update(chunk)
                received += len(chunk)
    if length and received != int(length):
        raise Failure(f"download of {url} stopped after {_size(received)} of {_size(int(length))}: {hint}")
    return digest.hexdigest()


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _check_member(name: str, url: str) -> None:
    """Refuse names that would land outside the extraction folder."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or ".." in posix.parts:
        raise Failure(
            f"{url} holds an unsafe member {name!r} (absolute path or '..'): refusing to unpack it; check --url"
        )


def extract(archive: Path, dest: Path, url: str) -> None:
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info.filename, url)
                zf.extractall(dest)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _check_member(member.name, url)
                    if not (member.isfile() or member.isdir()):
                        raise Failure(
                            f"{url} holds {member.name!r}, a link or special file: refusing to unpack it; check --url"
                        )
                # The "data" filter (Python 3.12, backported to 3.8.17+) re-checks all of the above.
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(dest, members=members, filter="data")
                else:
                    tf.extractall(dest, members=members)
        else:
            raise Failure(f"{url} is neither a .tar.gz nor a .zip archive: check --url")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise Failure(f"cannot unpack {url} ({exc}): the archive is damaged; download it again") from None


def dataset_folder(unpacked: Path, kind: str) -> Path:
    """The archives hold one top folder (``facades/train/...``); accept one without."""
    if has_layout(unpacked, kind):
        return unpacked
    entries = [p for p in unpacked.iterdir() if p.name != "__MACOSX" and not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked


def has_layout(folder: Path, kind: str) -> bool:
    def holds_images(sub: Path) -> bool:
        return sub.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in sub.iterdir())

    return all(holds_images(folder / sub) for sub in LAYOUTS[kind])


def install(args: argparse.Namespace) -> None:
    root = Path(args.root).expanduser()
    target = root / args.name
    if target.exists():
        print(f"{target} already exists: left as it is (remove it to download {args.name} again)")
        return
    url = args.url or BASE_URLS[args.kind].format(name=args.name)
    archive_name = url.rstrip("/").rsplit("/", 1)[-1] or f"{args.name}.archive"
    hint = f"check the connection, or download {archive_name} elsewhere and pass --url file:///path/to/{archive_name}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise Failure(f"cannot create {root} ({exc.strerror}): choose a writable --root") from None
    part = root / f"{args.name}.part"
    unpacked: Path | None = None
    try:
        digest = download(url, part, hint)
        expected = args.sha256 or KNOWN_SHA256.get((args.kind, args.name))
        if expected and digest != expected:
            raise Failure(
                f"{url} has SHA-256 {digest}, expected {expected}: the file is damaged or not "
                f"the published archive; download it again, or pass the right --sha256"
            )
        if expected:
            print(f"sha256 {digest}: matches")
        else:
            print(
                f"sha256 {digest} (no known digest to compare with: record it in KNOWN_SHA256 "
                f"or pass --sha256 next time)"
            )
        # Inside root, so that the final rename stays on one file system (atomic).
        unpacked = Path(tempfile.mkdtemp(prefix=f".{args.name}.", suffix=".tmp", dir=root))
        extract(part, unpacked, url)
        found = dataset_folder(unpacked, args.kind)
        if not has_layout(found, args.kind):
            layout = " and ".join(f"{args.name}/{sub}/*.jpg" for sub in LAYOUTS[args.kind])
            raise Failure(f"{url} did not unpack to the {args.kind} layout ({layout}): check --kind and --url")
        if target.exists():
            raise Failure(f"{target} appeared while downloading: left as it is; remove it and run again")
        os.rename(found, target)
        print(f"installed {target}")
    finally:
        part.unlink(missing_ok=True)
        if unpacked is not None:
            shutil.rmtree(unpacked, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    try:
        install(parse_args(argv))
    except Failure as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted; nothing was installed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
