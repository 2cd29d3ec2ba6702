"""The one atomic file write of the project (the results store, checkpoints, exports, HDF5 files).

A reader of the target sees the old file or the new one, never half of one; an interrupted or failed
write (a full disk, kill -9 between the two steps aside) leaves no partial file under the target's name.
The new bytes go to ``.<name>.<random>.tmp`` in the target's own folder (a rename is atomic only within
one file system), created exclusively with mode 0666 less the umask (``tempfile.mkstemp`` makes 0600
files, which no other user or web server could read once renamed), fsynced, then renamed over the
target with ``os.replace``. Any failure removes the temporary. Debris of a killed writer matches
:func:`temp_glob` (``benchmark.store.ResultsStore.sweep_temporary`` sweeps it).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def temp_glob(name: str = "*") -> str:
    """The glob matching the temporary files of writes to ``name`` (``*``: to any file)."""
    return f".{name}.*.tmp"


def create_temporary(folder: str | os.PathLike, name: str) -> tuple[int, str]:
    """A new, exclusive ``.<name>.<random>.tmp`` in ``folder`` (mode 0666 less the umask): (open fd, path).

    Exclusive and without following links: a file or link planted at a guessed name is never written
    through; another random name is drawn instead.
    """
    for _ in range(100):
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary file name for {name} in {folder}")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *, mkdir: bool = True) -> Path:
    """Call ``write(tmp)`` to fill a fresh temporary file beside ``path``, then fsync and rename it over ``path``.

    For writers that take a path (``torch.save``, ``h5py.File(tmp, "w")``, ``Figure.savefig``). ``tmp``
    already exists (empty) and has no ``.npz`` suffix: give ``np.savez`` an open file
    (``with open(tmp, "wb") as f: np.savez(f, ...)``), since with a path it would write ``tmp.npz`` instead.
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temporary(path.parent, path.name)
    os.close(fd)
    try:
        write(Path(tmp))
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mkdir: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically (see the module docstring)."""
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temporary(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(
    path: str | os.PathLike, text: str, *, encoding: str = "utf-8", errors: str = "strict", mkdir: bool = True
) -> Path:
    """Replace ``path`` with ``text`` (encoded with ``encoding``) atomically."""
    return atomic_write_bytes(path, text.encode(encoding, errors), mkdir=mkdir)
