"""Run records as the leaderboard reads them: the one record check (``check_record``, also used by the
results store), validation that skips and reports bad records, and reading records from files."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .labels import IDENTITY_FIELDS, MetricInfo, _short

SCHEMA = 1
KEYS = ("profile", "dataset", "variant", "split", "method")
SECTION_KEYS = ("dataset", "variant", "split")
_REQUIRED = ("status", "method", "dataset", "variant", "split", "seed", "profile")
_STATUSES = ("ok", "failed")

# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------

_INT64 = 2**63
_MAX_LENGTH = 2**31  # a clip length in frames; beyond this pandas' int columns would overflow


def _as_float(value: Any, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: expected a number or null, got {type(value).__name__} {_short(repr(value), 60)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{where}: number {_short(repr(value), 40)} is too large") from None


def _metric_identity(name: str, entry: Any, where: str) -> MetricInfo | None:
    """The identity a metric entry carries (``label``, ``unit``, ``higher_is_better``, ``family``), or None
    when it carries none (records written before the metric catalogue)."""
    if not isinstance(entry, Mapping) or not any(f in entry for f in IDENTITY_FIELDS):
        return None
    vals: dict[str, Any] = {}
    for f in ("label", "unit", "family"):
        v = entry.get(f)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise ValueError(f"{where}.{f}: expected a non-empty string or null, got {_short(repr(v), 60)}")
        vals[f] = None if v is None else _check_text(v, f"{where}.{f}")
    hib = entry.get("higher_is_better")
    if hib is not None and not isinstance(hib, bool):
        raise ValueError(f"{where}.higher_is_better: expected true, false or null, got {_short(repr(hib), 60)}")
    return MetricInfo(name, vals["label"], vals["unit"], hib, vals["family"])


def _metric_value(entry: Any, where: str) -> float:
    # the harness writes {"value": ..., "std": ..., "n": ...}; a bare number is accepted too
    if isinstance(entry, Mapping):
        if "value" not in entry:
            keys = _short(str(sorted(map(str, entry))), 80)
            raise ValueError(f"{where}: metric entry has no 'value' key (keys: {keys})")
        return _as_float(entry["value"], where + ".value")
    return _as_float(entry, where)


def _at(where: str, name: Any) -> str:
    return f"{where}.{name}" if where else str(name)


# control characters and lone surrogates (JSON "\u0000", "\ud800"): pandas and UTF-8 writers mishandle them
_BAD_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def _check_text(value: str, where: str) -> str:
    m = _BAD_CHARS.search(value)
    if m:
        raise ValueError(
            f"{where}: {_short(repr(value), 60)} holds the control or invalid character {m.group()!r} at {m.start()}"
        )
    return value


def _opt_text(value: Any, limit: int = 80) -> str | None:
    """A short display string, or None for anything else (these fields only annotate a row)."""
    if not isinstance(value, str) or not value.strip() or _BAD_CHARS.search(value):
        return None
    return _short(value, limit)


def _opt_count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < _INT64:
        return None
    return int(value)


def _fit_summary(rec: Mapping) -> dict:
    """What the training of a run says about itself: ``steps`` done, ``total_steps`` scheduled,
    ``paper_steps`` (the method's paper schedule, its config's ``steps``) and ``budget_cut``.

    Empty for a method without training (ConnComp's ``fit_info`` is ``{}``) and for failed runs. These
    fields only annotate rows and tell learned methods apart, so a malformed one is ignored rather than
    rejecting a record that is otherwise valid.
    """
    info = rec.get("fit_info")
    if not isinstance(info, Mapping):
        return {}
    config = rec.get("config")
    paper = info.get("paper_steps", config.get("steps") if isinstance(config, Mapping) else None)
    out = {
        "steps": _opt_count(info.get("steps")),
        "total_steps": _opt_count(info.get("total_steps")),
        "paper_steps": _opt_count(paper),
        "budget_cut": info.get("budget_cut") is True,
    }
    return out if out["steps"] is not None or out["total_steps"] is not None else {}


def _clean_record(rec: Any, where: str) -> dict:
    """The checked, normalised copy of one record; ValueError naming ``where``'s field at fault."""
    if not isinstance(rec, Mapping):
        raise ValueError(f"{where or 'record'}: expected a dict, got {type(rec).__name__}")
    missing = [k for k in _REQUIRED if k not in rec]
    if missing:
        raise ValueError(f"{where or 'record'}: missing field(s) {missing}; a run record needs {list(_REQUIRED)}")
    schema = rec.get("schema", SCHEMA)
    if isinstance(schema, bool) or schema != SCHEMA:
        raise ValueError(f"{_at(where, 'schema')}: expected {SCHEMA}, got {_short(repr(schema), 60)}")
    status = rec["status"]
    if not isinstance(status, str) or status not in _STATUSES:
        raise ValueError(f"{_at(where, 'status')}: expected one of {_STATUSES}, got {_short(repr(status), 60)}")
    for k in ("method", "dataset", "variant", "split", "profile"):
        if not isinstance(rec[k], str) or not rec[k].strip():
            raise ValueError(f"{_at(where, k)}: expected a non-empty string, got {_short(repr(rec[k]), 60)}")
        _check_text(rec[k], _at(where, k))
    seed = rec["seed"]
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not -_INT64 <= seed < _INT64:
        raise ValueError(f"{_at(where, 'seed')}: expected a 64-bit integer, got {_short(repr(seed), 60)}")
    metrics = rec.get("metrics") or {}
    if not isinstance(metrics, Mapping):
        raise ValueError(f"{_at(where, 'metrics')}: expected a dict of metric entries, got {type(metrics).__name__}")
    by_length = rec.get("by_length") or {}
    if not isinstance(by_length, Mapping):
        raise ValueError(
            f"{_at(where, 'by_length')}: expected {{metric: {{length: value}}}}, got {type(by_length).__name__}"
        )
    clean = {k: rec[k] for k in _REQUIRED}
    clean["seed"] = int(seed)
    clean["error"] = rec.get("error")
    clean["train_seconds"] = _as_float(rec.get("train_seconds"), _at(where, "train_seconds"))
    clean["created"] = str(rec.get("created") or "")
    clean["git_revision"] = rec.get("git_revision")
    clean["device"] = _opt_text(rec.get("device"))
    clean["fit_info"] = _fit_summary(rec)
    clean["metrics"] = {}
    clean["by_length"] = {}
    clean["identity"] = {}
    if status == "ok":
        for name, entry in metrics.items():
            _check_text(str(name), _at(where, "metrics"))
            clean["metrics"][str(name)] = _metric_value(entry, _at(where, f"metrics.{name}"))
            info = _metric_identity(str(name), entry, _at(where, f"metrics.{name}"))
            if info is not None:
                clean["identity"][str(name)] = info
        # a record cleaned before (build() validates, then aggregates) keeps the identities it had
        kept = rec.get("identity")
        if isinstance(kept, Mapping):
            for name, info in kept.items():
                if isinstance(info, MetricInfo) and info.key == name and name in clean["metrics"]:
                    clean["identity"].setdefault(name, info)
        for name, per_len in by_length.items():
            _check_text(str(name), _at(where, "by_length"))
            if not isinstance(per_len, Mapping):
                raise ValueError(
                    f"{_at(where, f'by_length.{name}')}: expected {{length: value}}, got {type(per_len).__name__}"
                )
            vals = {}
            for length, v in per_len.items():
                try:
                    L = int(length)
                except (TypeError, ValueError):
                    L = None
                if L is None or not 1 <= L < _MAX_LENGTH:
                    raise ValueError(
                        f"{_at(where, f'by_length.{name}')}: length keys must be integers from 1 "
                        f"to {_MAX_LENGTH - 1}, got {_short(repr(length), 40)}"
                    )
                vals[L] = _as_float(v, _at(where, f"by_length.{name}[{length}]"))
            clean["by_length"][str(name)] = vals
    return clean


def check_record(rec: Any) -> None:
    """Raise ValueError naming the first field of ``rec`` that is not a valid run record's.

    The one record check of ocbench: the results store skips (and reports) what fails it, so
    neither the leaderboard nor a resumed run ever trusts such a record.
    """
    _clean_record(rec, "")


def validate_records(records: Iterable[Mapping[str, Any]], problems: list[str] | None = None) -> list[dict]:
    """Check records and return them de-duplicated per seed key (latest ``created`` wins).

    An invalid record raises ValueError naming its index and the field that is wrong, or, when a
    ``problems`` list is given, is left out with that message appended to the list.
    """
    if isinstance(records, (str, bytes, Path, Mapping)):
        raise TypeError(
            "records: expected an iterable of run-record dicts "
            f"(use read_records(path) for files), got {type(records).__name__}"
        )
    out: dict[tuple, tuple[str, int, dict]] = {}
    for i, rec in enumerate(records):
        try:
            clean = _clean_record(rec, f"records[{i}]")
        except ValueError as e:
            if problems is None:
                raise
            rid = rec.get("run_id") if isinstance(rec, Mapping) else None
            problems.append(f"{e} (record skipped{f', run_id {_short(repr(rid), 80)}' if rid is not None else ''})")
            continue
        key = tuple(clean[k] for k in KEYS) + (clean["seed"],)
        prev = out.get(key)
        if prev is None or (clean["created"], i) >= (prev[0], prev[1]):
            out[key] = (clean["created"], i, clean)
    return [v[2] for v in sorted(out.values(), key=lambda t: t[1])]


def read_records(path: str | Path) -> list[dict]:
    """Read run records from a ``.json`` (one dict or a list), a ``.jsonl`` file, or a folder of them."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no results file or folder at {path}")
    # folders and dangling links named *.json are not record files
    files = (
        sorted(p for p in path.rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file())
        if path.is_dir()
        else [path]
    )
    records: list[dict] = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        if f.suffix == ".jsonl":
            for ln, line in enumerate(text.splitlines(), 1):
                if line.strip():
                    try:
                        records.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{f}:{ln}: not valid JSON ({e.msg})") from None
        else:
            try:
                data = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"{f}: not valid JSON ({e.msg})") from None
            records.extend(data if isinstance(data, list) else [data])
    return records


def _filter_profile(recs: list[dict], profile: str | None) -> list[dict]:
    if profile is None:
        return recs
    if not isinstance(profile, str):
        raise TypeError(f"profile: expected a profile name (str) or None, got {type(profile).__name__}")
    return [r for r in recs if r["profile"] == profile]
