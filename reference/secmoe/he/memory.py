"""Keep freed memory inside the process (spec/20-he.md §20.2, memory decision).

Every numpy temporary of an RNS polynomial is hundreds of kilobytes. glibc returns freed blocks
of that size to the operating system (mmap threshold, heap trimming), so the next temporary
faults its pages back in one by one; on the reference machine a page fault costs about 1.5 us,
more than the arithmetic on the page. Raising the two thresholds makes freed memory reusable,
as a C++ library's memory pool does. Without glibc (or with SECMOE_KEEP_MEMORY=0) nothing
changes but the speed. Importing this module changes nothing: the ``secmoe`` command calls
:func:`keep_freed_memory` at start-up, and an application embedding the library may do so.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks up to 32 MiB in the heap; True if it accepted."""
    if not sys.platform.startswith("linux") or os.environ.get("SECMOE_KEEP_MEMORY") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
