"""A per-user cache of checked rulesets, keyed by the content of their files.

Loading a catalog of 10,000 contracts (parsing and checking 60,000 lines)
takes seconds, and every billing run starts with it.  A checked
:class:`~._ruleset.Ruleset` is immutable data, so it is stored once, pickled,
and read back in a fraction of the time while the files are unchanged.

Safety, because a pickle runs code when it is read:

* the folder is the user's own cache folder (``$XDG_CACHE_HOME`` or
  ``~/.cache``, then ``pricing-dsl``), created with mode 0700; it is used
  only if it is owned by the user and no one else may write to it, and each
  file only if it is owned by the user and no one else may write to it;
* the key is a SHA-256 of the package version, the Python version and
  every file's name and bytes, in order: a changed, added or removed file
  is a different key, so a stale entry is never read;
* anything unreadable, truncated or not a ruleset is ignored (and the
  ruleset is built afresh), and files are written atomically.

``PRICING_DSL_NO_CACHE=1`` turns every cache of the package off.
"""

from __future__ import annotations

import copyreg
import functools
import hashlib
import io
import os
import pickle
import stat
import sys
import tempfile
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._ruleset import Ruleset

__all__ = ["dump_ruleset", "load_ruleset", "read_cached", "user_folder", "write_cached"]


def user_folder() -> Path | None:
    """The user's own cache folder for this package, or None where none can be used."""
    if os.environ.get("PRICING_DSL_NO_CACHE"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = Path(base) / "pricing-dsl"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.stat()
    except OSError:
        return None
    if not _private(info):
        return None
    return folder


def _private(info: os.stat_result) -> bool:
    """Owned by this user, and writable by no one else."""
    getuid = getattr(os, "getuid", None)
    if getuid is not None and info.st_uid != getuid():
        return False
    return not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


# ------------------------------------------------------------ pickling


def _proxy(items: dict[Any, Any]) -> Mapping[Any, Any]:
    """A read-only mapping again, when unpickled (``MappingProxyType`` cannot be pickled)."""
    return types.MappingProxyType(items)


def _reduce_proxy(mapping: Mapping[Any, Any]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    return _proxy, (dict(mapping),)


def dump_ruleset(rules: Ruleset, *, tests: bool = True) -> bytes:
    """A ruleset's data as bytes: contracts, meters, add-ons, files (and tests).

    Its caches (plans, compiled code) are left out and filled again on use.
    """
    from ._ruleset import Ruleset

    # Every data field (a new one is never forgotten); the caches start empty.
    data = {f.name: getattr(rules, f.name) for f in fields(Ruleset) if not f.name.startswith("_")}
    if not tests:
        data["tests"] = ()
    bare = Ruleset(**data)
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = {**copyreg.dispatch_table, types.MappingProxyType: _reduce_proxy}
    pickler.dump(bare)
    return buf.getvalue()


def load_ruleset(data: bytes) -> Ruleset:
    """The ruleset :func:`dump_ruleset` wrote; ValueError if the bytes are not one."""
    from ._ruleset import Ruleset

    try:
        loaded = pickle.loads(data)
    except Exception as exc:  # truncated or foreign bytes: any unpickling failure
        raise ValueError(f"not a pickled ruleset: {exc}") from None
    if not isinstance(loaded, Ruleset):
        raise ValueError("not a pickled ruleset")
    return loaded


# ---------------------------------------------------------------- entries


@functools.cache
def _code_fingerprint() -> str:
    """The package's own code: each module's name, size and modification time.

    Part of every key, so a ruleset checked by other code (an upgrade, or a
    working copy being edited) is never read back, even at the same version.
    """
    from . import __version__

    parts = [f"pricing-dsl {__version__} python {sys.version}"]
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".lark"):
            info = path.stat()
            parts.append(f"{path.relative_to(root)} {info.st_size} {info.st_mtime_ns}")
    return "\n".join(parts)


def key(sources: Sequence[tuple[str, bytes]]) -> str:
    """The cache key of a ruleset's files: their names and bytes, and the package's code."""
    h = hashlib.sha256()
    h.update(_code_fingerprint().encode("utf-8", "surrogateescape") + b"\0")
    for name, content in sources:
        h.update(name.encode("utf-8", "surrogateescape") + b"\0")
        h.update(len(content).to_bytes(8, "big") + content)
    return h.hexdigest()


def _entry(folder: Path, digest: str) -> Path:
    return folder / f"ruleset-{digest[:32]}.pickle"


def read_cached(sources: Sequence[tuple[str, bytes]]) -> Ruleset | None:
    """The cached ruleset for these files, or None (no cache, no entry, or an unsafe one)."""
    folder = user_folder()
    if folder is None:
        return None
    path = _entry(folder, key(sources))
    try:
        with open(path, "rb") as fh:
            if not _private(os.fstat(fh.fileno())):
                return None
            data = fh.read()
    except OSError:
        return None
    try:
        rules = load_ruleset(data)
    except ValueError:
        return None
    # The names recorded in the entry are those of the files it was built from.
    if rules.files != tuple(name for name, _ in sources):
        return None
    return rules


def write_cached(sources: Sequence[tuple[str, bytes]], rules: Ruleset) -> None:
    """Store a checked ruleset for these files; silently does nothing where it cannot."""
    folder = user_folder()
    if folder is None:
        return
    path = _entry(folder, key(sources))
    try:
        data = dump_ruleset(rules)
        fd, tmp = tempfile.mkstemp(prefix=".ruleset-", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:
        # A cache that cannot be written (a full disk, an unpicklable value)
        # must never stop a ruleset from loading.
        return
