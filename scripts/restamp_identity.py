"""Stamp the metric catalogue's identity onto stored records written before the catalogue existed.

Records written before ``metrics/catalogue.py`` carry each metric's value and convention ``version``
but no label, unit, direction or family, so the leaderboard shows their columns by key and without
↑/↓. This adds exactly the fields the scorer now writes beside a value (``Metric.identity()``:
version, label, unit, higher_is_better, family) and nothing else: values, counts, statuses and every
other field stay as they are. It refuses a record whose stored ``version`` differs from the
catalogue's, since that number was computed under another convention and relabelling it would be a
lie; such a record must be re-run instead. Rerunning is harmless (a stamped record is left unchanged).

    python scripts/restamp_identity.py results/paper            # stamp every *.json under the folder
    python scripts/restamp_identity.py --check results/paper    # exit 1 if any record needs stamping
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metrics.catalogue import CATALOGUE  # noqa: E402
from ocbench_common.files import atomic_write_text  # noqa: E402


class ConventionMismatch(ValueError):
    """A stored value's convention is not the catalogue's: stamping it would mislabel the number."""


def restamp(record: dict) -> tuple[dict, list[str]]:
    """(the record with each catalogue metric's identity stamped, the keys that changed).

    Only the entries of ``record["metrics"]`` whose key is in the catalogue are touched, and in them
    only the identity fields; a key the catalogue lacks is left alone (it stays neutral on the page).
    """
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        raise ValueError(f"run {record.get('run_id')!r}: 'metrics' is not a dict of metric entries")
    out = dict(record, metrics=dict(metrics))
    changed = []
    for key, entry in metrics.items():
        row = CATALOGUE.get(key)
        if row is None or not isinstance(entry, dict):
            continue
        ident = row.identity()
        stored = entry.get("version")
        if stored is not None and stored != ident["version"]:
            raise ConventionMismatch(
                f"run {record.get('run_id')!r}, metric {key!r}: stored version {stored!r} is not the "
                f"catalogue's {ident['version']!r}; re-run it rather than relabel a number of another convention"
            )
        new = {**entry, **ident}
        if new != entry:
            out["metrics"][key] = new
            changed.append(key)
    return out, changed


def _write_json(path: Path, data: dict) -> None:
    """Write as the results store does (indent 1, sorted keys, newline), atomically."""
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path, help="record files (*.json) or folders of them")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a record needs stamping")
    a = ap.parse_args(argv)
    files = []
    for p in a.paths:
        if not p.exists():
            ap.error(f"{p}: no such file or folder")
        files += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    pending = 0
    for f in files:
        rec = json.loads(f.read_text(encoding="utf-8"))
        try:
            new, changed = restamp(rec)
        except ConventionMismatch as e:
            print(f"error: {f}: {e}", file=sys.stderr)
            return 2
        if not changed:
            print(f"{f}: up to date")
            continue
        pending += 1
        if a.check:
            print(f"{f}: needs stamping ({', '.join(changed)})")
        else:
            _write_json(f, new)
            print(f"{f}: stamped {', '.join(changed)}")
    return 1 if a.check and pending else 0


if __name__ == "__main__":
    sys.exit(main())
