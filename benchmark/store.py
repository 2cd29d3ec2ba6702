"""The results store: one JSON record per run, plain text, written atomically.

A record is keyed by its run id ``method__dataset__variant__split__s<seed>__<profile>`` and lives
at ``<root>/<profile>/<run_id>.json``. Corrupt files are reported and skipped, never dropped
silently: :meth:`ResultsStore.records` returns them in ``self.problems``.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from generators.core import DatasetError, check_name

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
    try:
        return check_name(value, what)
    except DatasetError as e:
        raise UnsafeNameError(str(e)) from None


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
        p = self.path(rid, profile)
        if not p.exists():
            return None
        try:
            rec = json.loads(p.read_text())
            self._check(rec, p)
            return rec
        except (ValueError, KeyError) as e:
            self.problems.append(f"{p}: corrupt record skipped ({e})")
            return None

    @staticmethod
    def _check(rec: dict, p: Path) -> None:
        if not isinstance(rec, dict):
            raise ValueError("not a JSON object")
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise KeyError(f"missing fields {missing}")

    def records(self, profile: str | None = None, **filters) -> list[dict]:
        """Every readable record (optionally of one profile, filtered by equal fields)."""
        self.problems = []
        out = []
        dirs = [self.root / profile] if profile else ([d for d in sorted(self.root.iterdir()) if d.is_dir()]
                                                      if self.root.exists() else [])
        for d in dirs:
            if not d.exists():
                continue
            for p in sorted(d.glob("*.json")):
                try:
                    rec = json.loads(p.read_text())
                    self._check(rec, p)
                except (ValueError, KeyError) as e:
                    self.problems.append(f"{p}: corrupt record skipped ({e})")
                    continue
                if all(_match(rec.get(k), v) for k, v in filters.items() if v is not None):
                    out.append(rec)
        return out


def _match(value, wanted) -> bool:
    if isinstance(wanted, (list, tuple, set)):
        return value in wanted or str(value) in {str(w) for w in wanted}
    return value == wanted or str(value) == str(wanted)


def iter_metric_rows(records: Iterable[dict]):
    for r in records:
        for m, v in (r.get("metrics") or {}).items():
            yield r, m, v
