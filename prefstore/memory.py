"""Hand the heap a big computation freed back to the operating system (issue 17)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def release_freed_memory() -> None:
    """Return freed heap memory to the OS (glibc's ``malloc_trim``); elsewhere a no-op.

    glibc keeps freed blocks in the process, so a frame of a million judgments
    that is no longer used would still count in the worker's resident memory,
    and in the peak of whatever comes next. The worker's refit calls this
    between its stages.
    """
    arrow = sys.modules.get("pyarrow")  # pandas' string columns allocate in arrow's own pool
    if arrow is not None:
        arrow.default_memory_pool().release_unused()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass
