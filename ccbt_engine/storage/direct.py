"""Writing verified pieces past the OS page cache (``O_DIRECT``), where that is safe and pays.

Why: a downloaded piece is written once and rarely read back soon, yet a buffered write copies
it into freshly allocated page cache and leaves it dirty for writeback. On the 2-vCPU VMs these
benchmarks run on, whose balloon driver hands free memory back to the host, that first touch
costs 1.4-1.9 s of system CPU per GiB; a direct write costs ~0.1 s, and the device copies the
bytes straight out of our piece buffer (docs/performance.md, "Direct writes"). On memory that is
already backed the two are even. It also keeps gigabytes of download from crowding the user's
own programs out of the cache, which is what qBittorrent's "disable OS cache" write mode is for.

When: only on Linux, only on local block file systems known to implement direct I/O (never
NFS/SMB, where each direct write is a synchronous round trip, nor FUSE, tmpfs or overlay), and
only for runs of at least :data:`DIRECT_MIN` bytes (small pieces on a spinning disk would turn
into one seek per piece). Within a run, the bytes before the first :data:`ALIGN` boundary of the
file and after the last are written through the cache; the aligned middle goes direct when it is
aligned in memory too, which it is for piece buffers (page-aligned) of files that start on the
grid: single files, the first file, padded (v2, hybrid) torrents. A file that starts off the grid
is written through the cache: copying it into an aligned bounce buffer, under the GIL, measured
slower than the page-cache copy it saves (200 varied files, 488 vs 566 MiB/s).

Whatever the kernel refuses (``EINVAL``: an alignment this device does not accept) turns
direct writes off for that file and is written again through the cache, so the mode can only
cost speed, never data.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = [
    "ALIGN",
    "DIRECT_MIN",
    "HAVE_O_DIRECT",
    "all_aligned",
    "direct_file_system",
    "mount_table",
    "open_direct",
    "page_aligned",
    "parse_mountinfo",
    "plan_direct",
]

#: offset, length and memory alignment every direct write keeps: the page size, which covers
#: 512-byte and 4 KiB sector devices alike
ALIGN = 4096
#: runs shorter than this are written through the cache (see the module docstring)
DIRECT_MIN = 256 * 1024

HAVE_O_DIRECT = sys.platform.startswith("linux") and hasattr(os, "O_DIRECT")

#: local block-device file systems with a real direct I/O path
_DIRECT_FS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "jfs", "nilfs2", "bcachefs", "reiserfs"}
)

#: octal escapes /proc/self/mountinfo uses in mount points
_MOUNT_ESCAPES = (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\"))


def page_aligned(data: bytearray, size: int) -> memoryview:
    """The view of ``size`` bytes of ``data`` that starts on an :data:`ALIGN` boundary in
    memory (``data`` needs ``ALIGN`` bytes to spare for that); the whole of ``data`` when it
    has no room to spare. The bytes do not move: a bytearray with views cannot be resized."""
    whole = memoryview(data)
    if len(data) < size + ALIGN:
        return whole[:size]
    start = -(_address(whole) or 0) % ALIGN
    return whole[start : start + size]


def _address(view: memoryview) -> int | None:
    """Where ``view`` starts in memory; None for a read-only buffer (ctypes cannot say)."""
    if view.readonly or not view.c_contiguous:
        return None
    if not len(view):
        return 0
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def _is_aligned(view: memoryview) -> bool:
    address = _address(view)
    return address is not None and not address % ALIGN and not len(view) % ALIGN


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, file system type) pairs of a ``/proc/self/mountinfo`` text, longest mount
    point first (so the first prefix match is the mount a path is on)."""
    mounts: list[tuple[str, str]] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        point = fields[4]
        for esc, char in _MOUNT_ESCAPES:
            point = point.replace(esc, char)
        mounts.append((point, right.split()[0]))
    mounts.sort(key=lambda m: len(m[0]), reverse=True)
    return mounts


def mount_table() -> list[tuple[str, str]]:
    """This system's mounts as :func:`parse_mountinfo` gives them (empty where unreadable)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            return parse_mountinfo(fh.read())
    except OSError:
        return []


def direct_file_system(path: str, mounts: list[tuple[str, str]]) -> bool:
    """Whether ``path`` is (or, not created yet, will be) on a file system listed as safe,
    by ``mounts`` (:func:`mount_table`, read once by the caller for all its files)."""
    if not HAVE_O_DIRECT:
        return False
    probe = os.path.realpath(path)  # links resolved; a part not created yet kept as named
    for point, fs_type in mounts:
        if probe == point or probe.startswith(point.rstrip("/") + "/"):
            return fs_type in _DIRECT_FS
    return False


def open_direct(fd: int) -> int:
    """A second, direct-I/O descriptor for the file ``fd`` is open on (same inode, no path race).

    Raises OSError (``EINVAL`` where the file system refuses ``O_DIRECT``).
    """
    flags = os.O_WRONLY | os.O_DIRECT | getattr(os, "O_CLOEXEC", 0)
    return os.open(f"/proc/self/fd/{fd}", flags)


def plan_direct(offset: int, length: int) -> tuple[int, int] | None:
    """For a write of ``length`` bytes at file ``offset``: (head, middle) byte counts, where the
    ``head`` bytes go through the cache, the next ``middle`` bytes direct and the rest through
    the cache again; None when the run is too short to bother (see :data:`DIRECT_MIN`)."""
    if length < DIRECT_MIN:
        return None
    head = -offset % ALIGN
    middle = (length - head) // ALIGN * ALIGN
    if middle < DIRECT_MIN // 2:
        return None
    return head, middle


def all_aligned(views: list[memoryview]) -> bool:
    """Whether a direct descriptor takes ``views`` as they are: each starts at an
    :data:`ALIGN` boundary in memory and is a whole number of blocks long."""
    return all(_is_aligned(v) for v in views)
