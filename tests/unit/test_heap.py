"""The C heap kept for reuse across evaluations."""

from __future__ import annotations

import platform

import pytest

from nst_core import heap


def test_the_heap_is_kept_once_per_process_where_glibc_is() -> None:
    """On glibc (the CI's Linux) the thresholds are set, and a second call is a no-op."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert heap.keep_freed_memory() and heap.keep_freed_memory()
