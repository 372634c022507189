"""Start-up settings: the allocator keeps freed blocks on glibc and leaves other C libraries alone."""

from __future__ import annotations

import platform

from engine import runtime


def test_keep_freed_memory_takes_on_glibc_and_is_idempotent():
    on_glibc = platform.libc_ver()[0] == "glibc"
    assert runtime.keep_freed_memory() is on_glibc
    assert runtime.keep_freed_memory() is on_glibc  # a second call changes nothing
