"""Zip archives from strangers: validate every entry before reading any, read in memory.

Nothing is ever extracted to disk. :func:`check_zip` rejects path tricks, links,
encrypted or overlapping entries, deep trees and archives whose declared sizes or
compression ratios look like a bomb; :func:`read_member` then reads one entry with a hard
cap on the bytes actually produced, because declared sizes can lie (Python 3.11.7's
zipfile does not yet reject overlapping-entry bombs on its own).
"""

from __future__ import annotations

import itertools
import stat
import zipfile
from typing import Literal

from .dataset import DatasetError

__all__ = ["ArchiveError", "check_zip", "is_ignored", "member_parts", "read_member"]

ArchiveErrorKind = Literal["too_large", "invalid"]
_LOCAL_HEADER = 30  # fixed part of a zip local file header, in bytes


class ArchiveError(DatasetError):
    """A zip that is unsafe or too big to import; ``kind`` is "too_large" or "invalid"."""

    def __init__(self, kind: ArchiveErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ArchiveErrorKind = kind


def is_ignored(name: str) -> bool:
    """True for macOS/Windows clutter: ``__MACOSX/``, hidden files and folders, Thumbs.db."""
    parts = [p for p in name.split("/") if p]
    return any(p == "__MACOSX" or p.startswith(".") for p in parts) or (
        bool(parts) and parts[-1].lower() in ("thumbs.db", "desktop.ini")
    )


def member_parts(name: str) -> list[str]:
    """Path components of a (checked) member name, without a trailing slash."""
    return [p for p in name.split("/") if p]


def check_zip(
    zf: zipfile.ZipFile,
    *,
    max_entries: int = 20000,
    max_total_bytes: int = 512 * 2**20,
    max_ratio: int = 200,
    max_depth: int = 3,
) -> list[zipfile.ZipInfo]:
    """Validate every entry of ``zf``; return the file entries worth reading.

    Rules: at most ``max_entries`` entries; declared uncompressed total at most
    ``max_total_bytes``; no entry compressed more than ``max_ratio`` : 1; names relative,
    ``/``-separated, without ``..``, backslashes, drive letters or NUL; no symlinks or
    encrypted entries; entries do not overlap; files at most ``max_depth`` levels deep
    (``split/class/file``), or one more when everything sits in a single top folder (a
    zipped folder). Ignored clutter (see :func:`is_ignored`) is checked but not returned.

    Raises:
        ArchiveError: kind "too_large" or "invalid", naming the offending entry.
    """
    infos = zf.infolist()
    if len(infos) > max_entries:
        raise ArchiveError("too_large", f"the archive has {len(infos)} entries; the limit is {max_entries}")
    total = sum(i.file_size for i in infos)
    if total > max_total_bytes:
        raise ArchiveError(
            "too_large",
            f"the archive would unpack to {total / 2**20:.1f} MiB; the limit is {max_total_bytes / 2**20:.0f} MiB",
        )
    for info in infos:
        _check_entry(info, max_ratio)
    _check_no_overlap(infos)
    files = [i for i in infos if not i.is_dir() and not is_ignored(i.filename)]
    tops = {member_parts(i.filename)[0] for i in files}
    depth = max_depth + 1 if len(tops) == 1 and all(len(member_parts(i.filename)) > 1 for i in files) else max_depth
    for info in files:
        if len(member_parts(info.filename)) > depth:
            raise ArchiveError(
                "invalid",
                f"{info.filename!r} is nested too deeply; use class/file or train|test/class/file",
            )
    return files


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """Read one checked entry into memory, producing at most ``min(declared size, budget)`` bytes.

    Raises:
        ArchiveError: "too_large" when the entry exceeds ``budget`` (the caller's remaining
            total), "invalid" when it is damaged (bad CRC, bad compressed data).
    """
    if info.file_size > budget:
        raise ArchiveError("too_large", f"{info.filename!r} would exceed the archive's size limit")
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)  # zipfile stops at the declared size itself
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ArchiveError("invalid", f"{info.filename!r} is damaged ({exc})") from exc
    if len(data) > info.file_size:
        raise ArchiveError("invalid", f"{info.filename!r} is longer than the archive says")
    return data


def _check_entry(info: zipfile.ZipInfo, max_ratio: int) -> None:
    # zipfile already turns backslashes into "/" on Windows only; the raw name is in orig_filename.
    raw, name = info.orig_filename, info.filename
    if "\\" in raw or "\x00" in raw:
        raise ArchiveError("invalid", f"{raw!r} uses a backslash or NUL in its name")
    parts = name.split("/")
    if name.startswith("/") or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise ArchiveError("invalid", f"{name!r} is an absolute path")
    if any(p in ("..", ".") for p in parts) or "" in parts[:-1]:
        raise ArchiveError("invalid", f"{name!r} has '..', '.' or empty path components")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ArchiveError("invalid", f"{name!r} is a symbolic link")
    if info.flag_bits & 0x1:
        raise ArchiveError("invalid", f"{name!r} is encrypted")
    if info.file_size and info.compress_type != zipfile.ZIP_STORED:
        if info.compress_size == 0 or info.file_size / info.compress_size > max_ratio:
            raise ArchiveError(
                "too_large",
                f"{name!r} is compressed {info.file_size}:{max(info.compress_size, 1)}, more than "
                f"{max_ratio}:1 (a zip bomb?)",
            )
    elif info.file_size != info.compress_size and info.compress_type == zipfile.ZIP_STORED:
        raise ArchiveError("invalid", f"{name!r} is stored uncompressed but its two sizes differ")


def _check_no_overlap(infos: list[zipfile.ZipInfo]) -> None:
    """Each entry's local header + name + data must end before the next entry starts."""
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for a, b in itertools.pairwise(ordered):
        name_bytes = a.orig_filename.encode("utf-8" if a.flag_bits & 0x800 else "cp437", "replace")
        end = a.header_offset + _LOCAL_HEADER + len(name_bytes) + a.compress_size
        if b.header_offset < end:
            raise ArchiveError("invalid", f"entries {a.filename!r} and {b.filename!r} overlap (a zip bomb?)")
