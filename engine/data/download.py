"""Download MNIST, Fashion-MNIST or CIFAR-10 from their official locations, with checksums.

Every file is checked against its published MD5 (the ones torchvision uses for MNIST and
Fashion-MNIST; the one on the CIFAR page for its binary version). A cached file whose
checksum matches is never downloaded again; a download goes to a temporary file in the
cache folder and replaces the target only once its checksum is right.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from engine.fileio import TMP_PREFIX

from .dataset import DatasetError

__all__ = ["SOURCES", "Fetcher", "Progress", "download_dataset", "fetch_url", "file_md5"]

Progress = Callable[[int, int], None]  # (bytes done, total bytes or -1 when unknown)
Fetcher = Callable[[str, BinaryIO, "Progress | None"], None]

#: name -> (base URL, ((file name, md5), ...)).
SOURCES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        (
            ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
            ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
            ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        (
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ),
    ),
    "cifar10": (
        "https://www.cs.toronto.edu/~kriz/",
        (("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"),),
    ),
}

_CHUNK = 1 << 20
_MAX_DOWNLOAD = 512 << 20  # the largest official file (CIFAR-10) is 170 MB


def download_dataset(
    name: str,
    cache_dir: str | Path,
    *,
    progress: Progress | None = None,
    fetch: Fetcher | None = None,
) -> Path:
    """Make sure the official files of dataset ``name`` are in ``cache_dir``, downloading if needed.

    Args:
        name: "mnist", "fashion-mnist" or "cifar10".
        cache_dir: files go to ``cache_dir / name``.
        progress: called as ``progress(bytes_done, total)`` while downloading.
        fetch: ``fetch(url, out_file, progress)`` writes the body of ``url`` to ``out_file``;
            defaults to :func:`fetch_url` (tests pass a fake; nothing else needs to).

    Returns:
        The folder holding the four IDX files (MNIST, Fashion-MNIST, ready for
        ``load_mnist``) or the path of ``cifar-10-binary.tar.gz`` (ready for ``load_cifar10``).

    Raises:
        DatasetError: unknown name, a network failure (with advice for offline use) or a
            checksum mismatch.
    """
    if name not in SOURCES:
        raise DatasetError(f"unknown dataset {name!r}; downloadable datasets are {sorted(SOURCES)}")
    base, files = SOURCES[name]
    folder = Path(cache_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, md5 in files:
        target = folder / file_name
        if target.is_file() and file_md5(target) == md5:
            continue
        _download(base + file_name, target, md5, progress, fetch or fetch_url)
    return folder / files[0][0] if len(files) == 1 else folder


def fetch_url(url: str, out: BinaryIO, progress: Progress | None = None) -> None:
    """Stream ``url`` into ``out`` with urllib (60 s timeout, size cap)."""
    request = urllib.request.Request(url, headers={"User-Agent": "cnn-visualizer"})
    with urllib.request.urlopen(request, timeout=60) as response:
        total = int(response.headers.get("Content-Length") or -1)
        done = 0
        while chunk := response.read(_CHUNK):
            done += len(chunk)
            if done > _MAX_DOWNLOAD:
                raise OSError(f"the server sent more than {_MAX_DOWNLOAD} bytes")
            out.write(chunk)
            if progress is not None:
                progress(done, total)


def file_md5(path: str | Path) -> str:
    """Hex MD5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, target: Path, md5: str, progress: Progress | None, fetch: Fetcher) -> None:
    """Fetch url into a temp file next to target; keep it only if its MD5 matches."""
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                fetch(url, f, progress)
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DatasetError(
                f"could not download {url}: {reason}. If you are offline, download the files "
                "yourself and import them with --path"
            ) from exc
        actual = file_md5(tmp)
        if actual != md5:
            raise DatasetError(
                f"the file downloaded from {url} is damaged: its MD5 is {actual}, expected {md5}. "
                "Try again later, or download it yourself and import it with --path"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
