"""The results store: one JSON record per run, plain text, written atomically.

A record is keyed by its run id ``method__dataset__variant__split__s<seed>__<profile>`` and lives
at ``<root>/<profile>/<run_id>.json``. A file there that is not a valid record (not JSON, a field
of the wrong type (``leaderboard.check_record``, the one record check), a run id that does not
match its fields or its file name, a folder or a dangling link) is reported by its path in
``self.problems`` and skipped, never dropped silently and never trusted: :meth:`ResultsStore.get`
returns None for it, so a resumed run redoes that unit. Records are written like any results file
(mode 0666 less the umask, 0644 by default), so other users and a web server can read them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ocbench_common.files import atomic_write_text, temp_glob
from ocbench_common.names import check_name

SCHEMA = 1
ENV_RESULTS = "OCBENCH_RESULTS"
REQUIRED = ("run_id", "status", "method", "dataset", "variant", "split", "seed", "profile", "metrics")


def default_root() -> Path:
    return Path(os.environ.get(ENV_RESULTS, "results"))


NAME_FIELDS = ("method", "dataset", "variant", "split", "profile")


class UnsafeNameError(ValueError):
    """A name that would leave its folder or hide a record (``../x``, ``a/b``, ``<script>``)."""


def safe_name(value, what: str) -> str:
    """``value`` if it matches ``NAME_PATTERN`` (the one pattern of every registry), else UnsafeNameError."""
    return check_name(value, what, UnsafeNameError)


def path_inside(root: str | os.PathLike, *parts: str) -> Path:
    """``root/part/...``, proven to stay inside ``root`` once links and ``..`` are resolved."""
    root = Path(root)
    path = root.joinpath(*parts)
    real_root, real = root.resolve(), path.resolve()
    if real != real_root and real_root not in real.parents:
        raise UnsafeNameError(f"{path} resolves to {real}, outside {real_root}")
    return path


def run_id(method: str, dataset: str, variant: str, split: str, seed: int, profile: str) -> str:
    for what, v in zip(NAME_FIELDS, (method, dataset, variant, split, profile)):
        safe_name(v, what)
    return f"{method}__{dataset}__{variant}__{split}__s{int(seed)}__{profile}"


def _clean(x):
    """JSON has no NaN/inf: store them as null (the metric's n/n_skipped say why)."""
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            return _clean(x.item())
        except (ValueError, AttributeError):
            pass
    return x


@dataclass
class ResultsStore:
    root: Path = field(default_factory=default_root)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root)

    def path(self, rid: str, profile: str) -> Path:
        safe_name(profile, "profile")
        if not isinstance(rid, str) or "/" in rid or "\\" in rid or rid.startswith("."):
            raise UnsafeNameError(f"invalid run id {rid!r}")
        return path_inside(self.root, profile, f"{rid}.json")

    def write(self, record: dict) -> Path:
        for k in REQUIRED:
            if k not in record:
                raise ValueError(f"record lacks required field {k!r}")
        record = dict(record, schema=SCHEMA)
        expected = run_id(*(record[k] for k in ("method", "dataset", "variant", "split", "seed", "profile")))
        if record["run_id"] != expected:
            raise UnsafeNameError(f"record run_id {record['run_id']!r} does not match its fields ({expected!r})")
        p = self.path(record["run_id"], record["profile"])
        atomic_write_text(p, json.dumps(_clean(record), indent=1, sort_keys=True, allow_nan=False) + "\n")
        return p

    def get(self, rid: str, profile: str) -> dict | None:
        """The record stored under ``rid``, or None if there is none or it is invalid (reported in ``problems``)."""
        p = self.path(rid, profile)
        if not p.exists():
            return None
        return self._load(p)

    def _load(self, p: Path) -> dict | None:
        """The valid record in file ``p``, else None with the reason appended to ``self.problems``."""
        try:
            if not p.is_file():
                raise ValueError("not a regular file (a folder, or a link to nothing)")
            rec = json.loads(p.read_text(encoding="utf-8"))
            check_stored(rec, p)
            return rec
        except (OSError, ValueError, RecursionError) as e:
            reason = " ".join(str(e).split())
            shown = str(p) if str(p).isprintable() else ascii(str(p))  # one line, no terminal escapes
            self.problems.append(f"{shown}: invalid record skipped ({reason[:300]})")
            return None

    def sweep_temporary(self, profile: str, older_than_s: float = 3600.0) -> list[Path]:
        """Remove the ``.<record>.<random>.tmp`` files of writers killed mid-write (kill -9, a unit past its
        limit); a live write takes milliseconds, so a temporary file an hour old is debris. Returns them."""
        folder = path_inside(self.root, safe_name(profile, "profile"))
        gone = []
        if folder.is_dir():
            cutoff = time.time() - older_than_s
            for p in folder.glob(temp_glob("*.json")):  # the names ocbench_common.files writes through
                try:
                    if p.is_file() and not p.is_symlink() and p.stat().st_mtime < cutoff:
                        p.unlink()
                        gone.append(p)
                except OSError:
                    pass  # another sweeper got there first, or the file is not ours to remove
        return gone

    def records(self, profile: str | None = None, **filters) -> list[dict]:
        """Every valid record (optionally of one profile, filtered by equal fields); the rest in ``problems``."""
        self.problems = []
        out = []
        if profile:
            dirs = [path_inside(self.root, safe_name(profile, "profile"))]
        else:
            dirs = [d for d in sorted(self.root.iterdir()) if d.is_dir()] if self.root.is_dir() else []
        for d in dirs:
            if not d.is_dir():
                continue
            for p in sorted(d.glob("*.json")):
                rec = self._load(p)
                if rec is not None and all(_match(rec.get(k), v) for k, v in filters.items() if v is not None):
                    out.append(rec)
        return out


def check_stored(rec, p: Path | None = None) -> None:
    """Raise ValueError if ``rec`` is not a valid stored record (of file ``p``, when given).

    Valid: ``leaderboard.check_record`` passes, the store's fields are there, the run id is the one
    its fields make, and, for a file, it is named ``<profile>/<run_id>.json``: a record copied under
    another run's name would otherwise make a resumed run skip that other run.
    """
    from leaderboard import check_record  # the one record check (pandas: imported when records are read)

    if not isinstance(rec, dict):
        raise ValueError(f"not a JSON object but {type(rec).__name__}")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"missing field(s) {missing}")
    check_record(rec)
    expected = run_id(*(rec[k] for k in ("method", "dataset", "variant", "split", "seed", "profile")))
    if rec["run_id"] != expected:
        raise ValueError(f"run_id {str(rec['run_id'])[:120]!r} does not match its fields ({expected!r})")
    if p is not None and (p.name != f"{expected}.json" or p.parent.name != rec["profile"]):
        raise ValueError(f"the record of {expected!r} must be stored as {rec['profile']}/{expected}.json")


def _match(value, wanted) -> bool:
    if isinstance(wanted, (list, tuple, set)):
        return value in wanted or str(value) in {str(w) for w in wanted}
    return value == wanted or str(value) == str(wanted)


def iter_metric_rows(records: Iterable[dict]):
    for r in records:
        for m, v in (r.get("metrics") or {}).items():
            yield r, m, v
