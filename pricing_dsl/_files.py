"""Writing files so that a crash or a failed run never leaves half of one.

Every command that writes (`pricing fmt`, `pricing meter`, `pricing batch`)
writes a temporary file beside the target and renames it over the target
once it is complete: a rename within one directory is atomic.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["temp_beside", "write_atomic"]


def temp_beside(target: str | os.PathLike[str]) -> Path:
    """A new empty file next to ``target`` (``.NAME.XXXXXXXX.tmp``).

    It is made with the usual permissions (0666 less the umask), as the
    target itself would be, not the owner-only 0600 of ``tempfile.mkstemp``.
    Raises OSError when the directory cannot take a new file.
    """
    target = Path(target)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - 100 collisions of 32 random bits
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file next to {target}")  # pragma: no cover


def write_atomic(target: str | os.PathLike[str], text: str) -> None:
    """Replace ``target`` with ``text`` (UTF-8, newlines as given) in one rename.

    An existing target keeps its permission bits.  On any failure the
    temporary file is removed and the target is untouched; OSError is raised
    for the caller to report.
    """
    tmp = temp_beside(target)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
