"""The one error type the storage layer raises for disk trouble.

A full disk, a vanished file or a permission problem must pause *one* torrent with a message a
user can act on, never crash the session. So every ``OSError`` from file I/O is wrapped here with
the path and what we were doing, and the torrent shows ``str(error)`` as is.
"""

from __future__ import annotations

import errno as errno_mod
import os
from typing import Literal

Operation = Literal["write", "read", "open", "allocate", "delete"]

_VERBS: dict[str, str] = {
    "write": "writing",
    "read": "reading",
    "open": "opening",
    "allocate": "allocating",
    "delete": "deleting",
}


class StorageError(OSError):
    """A disk operation of a torrent failed.

    It is an ``OSError`` (``errno``/``filename`` keep their usual meaning) so generic handlers still
    work, plus ``path`` and ``operation`` for the torrent's error state. The message reads like
    "No space left on device while writing /x/y".
    """

    path: str
    operation: Operation

    def __init__(self, err: int, strerror: str, path: str | os.PathLike[str], operation: Operation):
        super().__init__(err, strerror, os.fspath(path))
        self.path = os.fspath(path)
        self.operation = operation

    def __str__(self) -> str:
        return f"{self.strerror} while {_VERBS[self.operation]} {self.path}"

    def __reduce__(self) -> tuple[type[StorageError], tuple[int, str, str, Operation]]:
        # OSError pickles by its args; keep ours so errors cross process/thread boundaries intact
        return (type(self), (self.errno or 0, self.strerror or "", self.path, self.operation))

    @classmethod
    def from_oserror(
        cls, exc: OSError, path: str | os.PathLike[str], operation: Operation
    ) -> StorageError:
        """Wrap ``exc``; an existing ``StorageError`` is returned unchanged (no double wrapping)."""
        if isinstance(exc, StorageError):
            return exc
        err = exc.errno if exc.errno is not None else errno_mod.EIO
        strerror = exc.strerror or os.strerror(err)
        return cls(err, strerror, path, operation)
