"""Where a split is written: the profile folder's lock, temporary folders that name their writer, the
sweep of orphans left by dead writers, space reserved up front, and the swap of a finished split.

Kept apart from :mod:`generators.core` (registry, seeds, manifests, verification): this is the file
system side of the split writer. Imports nothing from the project but the shared name pattern
(:mod:`ocbench_common.names`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

from ocbench_common.names import NAME_RE as _NAME_RE

try:
    import fcntl
except ImportError:  # Windows: no flock; splits are then swapped without a lock
    fcntl = None


@contextlib.contextmanager
def split_lock(parent: str | os.PathLike, exclusive: bool = False):
    """Hold ``flock`` on ``parent``, the folder holding a profile's splits, for the ``with`` block.

    Writers hold it exclusively only while they sweep orphans and swap a finished split in; readers
    hold it shared while they verify a split and open its memory maps (an open map outlives the
    rename and removal of its file). So a reader sees the old split or the new one, never neither, and
    generation itself blocks nobody. A directory lock leaves no file behind and dies with its process
    (kill -9 included). Without the folder there is nothing to protect; where flock is missing
    (Windows) or refused (some network file systems) the block runs unlocked. Not re-entrant: never
    nest two of these on one folder in one process.
    """
    fd = None
    if fcntl is not None:
        try:
            fd = os.open(parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        except OSError:
            if fd is not None:
                os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:64] or "host"


def _proc_stat(pid: int) -> list[bytes] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state first), or None without /proc."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_ticks(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot; 0 where unknown): with the pid it names
    one process even after the pid is reused."""
    fields = _proc_stat(pid)
    try:
        return int(fields[19]) if fields else 0
    except (ValueError, IndexError):
        return 0


def _owner_tag() -> str:
    pid = os.getpid()
    return f"{_host()}-{pid}-{_start_ticks(pid)}"


# .<split>.tmp-<host>-<pid>-<start ticks>-<random>  (and .old- for a split being swapped out)
_TEMP_RE = re.compile(
    r"\.(?P<split>.+)\.(?P<what>tmp|old)-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-(?P<start>\d+)"
    r"-[0-9a-f]+"
)
# names of earlier versions, with no owner: tempfile.mkdtemp's .<split>.tmp-XXXXXXXX and .<split>.old-<pid>
_LEGACY_RE = re.compile(r"\..+\.(tmp-[a-z0-9_]{8}|old-\d+)")
# a writer touches its folder after every chunk; one untouched this long, whose process cannot be asked
# (another host's, e.g. a container since re-created), is dead. Names of earlier versions had no heartbeat.
_FOREIGN_STALE_S = 3600
_LEGACY_STALE_S = 24 * 3600


def _alive(pid: int, start: int) -> bool:
    """Whether process ``pid`` started at ``start`` (on this host) may still be running (when unsure: yes)."""
    if pid <= 0:
        return True  # not a pid that can be probed
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # it exists, as another user's process
    fields = _proc_stat(pid)
    if not fields:
        return True  # no /proc: the pid alone decides
    if fields[0] == b"Z":
        return False  # a zombie writes nothing
    return start == 0 or _start_ticks(pid) in (0, start)


def _remove(path: Path) -> None:
    """Remove a folder, file or symlink (a symlink itself, never what it points to)."""
    if path.is_symlink() or not path.is_dir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def sweep_orphans(parent: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders in ``parent`` whose writer died (kill -9, SIGBUS, power loss); return them.

    A swap cut between its two renames left the old split as ``.<split>.old-...`` and no split:
    that folder is renamed back instead (verification then judges it). Folders of live writers are
    kept; another host's are kept until their heartbeat (mtime) is an hour old, ownerless ones of
    earlier versions until a day old. Call it under the exclusive :func:`split_lock` of ``parent``
    (generation does, at every start).
    """
    parent = Path(parent)
    swept: list[Path] = []
    try:
        entries = sorted(os.scandir(parent), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return swept
    now = time.time()
    for e in entries:
        path = Path(e.path)
        m = _TEMP_RE.fullmatch(e.name)
        legacy = not m and _LEGACY_RE.fullmatch(e.name)
        if not (m or legacy):
            continue
        try:
            age = now - e.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if legacy:
            if age < _LEGACY_STALE_S:
                continue
        elif m["host"] != _host():
            if age < _FOREIGN_STALE_S:
                continue
        elif _alive(int(m["pid"]), int(m["start"])):
            continue
        if m:
            final = parent / m["split"]
            if (
                m["what"] == "old"
                and _NAME_RE.fullmatch(m["split"])
                and not os.path.lexists(final)
                and e.is_dir(follow_symlinks=False)
            ):
                os.replace(path, final)  # the old split comes back
                continue
        _remove(path)
        swept.append(path)
    return swept


def _reserve(path: Path) -> None:
    """Allocate every block of a freshly made (sparse) ``.npy`` now, so a full disk fails here with
    ENOSPC instead of killing a process that writes through the memory map with SIGBUS later."""
    size = path.stat().st_size
    if not size or not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
            raise  # ENOSPC and friends; a file system that cannot preallocate keeps the free-space check
    finally:
        os.close(fd)


def _make_temp(parent: Path, split: str) -> Path:
    """A new folder ``.<split>.tmp-<host>-<pid>-<start>-<random>`` that names its writer for the sweep."""
    for _ in range(100):
        tmp = parent / f".{split}.tmp-{_owner_tag()}-{secrets.token_hex(4)}"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not make a temporary folder in {parent}")


def _swap_in(tmp: Path, final: Path) -> None:
    """Put the finished ``tmp`` at ``final`` (call under the exclusive lock). A rename cannot replace a
    non-empty folder, so the old split steps aside as ``.<split>.old-<owner>-...`` first; a kill between
    the two renames is repaired by :func:`sweep_orphans`."""
    if not os.path.lexists(final):
        os.replace(tmp, final)
        return
    old = final.with_name(f".{final.name}.old-{_owner_tag()}-{secrets.token_hex(4)}")
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)
        raise
    _remove(old)
