"""Run records -> aggregate tables, tiers, (mean / std / n over seeds), display rules and the shared table layout.

A run record is the JSON dict the harness writes once per (method, dataset, variant, split, seed,
profile) (DESIGN.md "The run"). This module only reads plain dicts: the leaderboard imports nothing
from the rest of ocbench (DESIGN.md "Layout": `leaderboard` imports none of the others).

Decisions (each stated once, here):
- One record per seed key. If the store holds several records for the same (profile, dataset,
  variant, split, method, seed) -- e.g. a failed run that was re-run -- the one with the latest
  ``created`` stamp wins (ties: the later one in the input), so a retry replaces its failure.
- A failed record counts in ``n_failed`` of its (method, dataset, variant, split) group and never
  enters a mean (baselines.md, Slot Attention pitfalls: "keep failed runs in the results store").
- ``std`` is the sample std over seeds (ddof=1); NaN when n = 1 and shown as "n=1".
- A metric value that is null/NaN/inf in an ok record (e.g. LPIPS without weights, docs/metrics.md §8) is
  *missing*: it is left out of the mean and of ``n`` and counted in ``n_missing``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .labels import (
    COUNT_TABLE_METRICS,
    IDENTITY_FIELDS,
    MetricInfo,
    _identities,
    _info,
    _short,
    _with_identity,
    count_of_split,
    dataset_label,
    dataset_sort_key,
    format_cell,
    main_metric,
    method_label,
    metric_infos,
    metric_sort_key,
    split_sort_key,
    variant_sort_key,
)
from .records import _filter_profile, validate_records

KEYS = ("profile", "dataset", "variant", "split", "method")
SECTION_KEYS = ("dataset", "variant", "split")

# ---------------------------------------------------------------------------------------------
# tiers: the papers' numbers, ocbench reference runs, the user's runs (and the pipeline check)
# ---------------------------------------------------------------------------------------------

#: The profile whose records are ocbench's reference runs: the papers' data sizes and schedules, meant
#: for a GPU. The committed ones live in ``results/paper/`` of the default store, so every page of that
#: store shows them beside the user's runs.
REFERENCE_PROFILE = "paper"
#: Display order of the tiers of a table. ``yours``: the user's runs that rank (methods without training,
#: such as ConnComp, are complete at any profile); ``pipeline``: learned methods run under a short
#: profile (smoke, quick), trained for seconds: proof that fit, predict and score run, not a result.
TIERS = ("paper", "reference", "yours", "pipeline")


def _learned(rec: Mapping) -> bool:
    """A run that trained (its ``fit_info`` reports steps); ConnComp's empty ``fit_info`` says it did not."""
    return bool(rec.get("fit_info"))


def tier_map(records: Iterable[Mapping]) -> dict[tuple[str, str], str]:
    """{(profile, method): tier} for checked records (:func:`validate_records`).

    Records of :data:`REFERENCE_PROFILE` are ``reference``; under any other profile a method that
    trained in any of its runs is ``pipeline``, one that never did (or whose runs all failed before
    saying) is ``yours``.
    """
    learned: dict[tuple[str, str], bool] = {}
    for r in records:
        k = (r["profile"], r["method"])
        learned[k] = learned.get(k, False) or _learned(r)
    return {k: "reference" if k[0] == REFERENCE_PROFILE else "pipeline" if v else "yours" for k, v in learned.items()}


def tier_title(tier: str, profiles: Sequence[str] = ()) -> tuple[str, str]:
    """(title, one-line explanation) of a tier band; ``profiles``: the profiles of its rows."""
    prof = f" ({', '.join(profiles)} profile{'s' if len(profiles) > 1 else ''})" if profiles else ""
    if tier == "paper":
        return "Published", "the papers' numbers, with their protocol and the table they come from"
    if tier == "reference":
        return (
            "ocbench reference runs",
            f"'{REFERENCE_PROFILE}' profile: the papers' data and schedules, trained "
            "on a GPU; records committed in the repo (results/paper/) and every later one",
        )
    if tier == "pipeline":
        return (
            f"Pipeline check{prof}",
            "learned methods trained for seconds: they show that fit, predict and "
            "score run end to end, not how good a method is; not ranked",
        )
    return f"Your runs{prof}", "methods without training are complete at any profile; ranked among themselves"


def _steps_text(recs: Sequence[Mapping]) -> str | None:
    fits = [r["fit_info"] for r in recs if r.get("fit_info")]
    if not fits:
        return None
    done = sorted({f["steps"] for f in fits if f["steps"] is not None})
    total = sorted({f["total_steps"] for f in fits if f["total_steps"] is not None})
    paper = sorted({f["paper_steps"] for f in fits if f["paper_steps"] is not None})

    def span(v: list[int]) -> str:
        return "?" if not v else f"{v[0]:,}" if len(v) == 1 else f"{v[0]:,}–{v[-1]:,}"

    text = f"{span(done)} / {span(total)} steps"
    if paper and paper != total:
        text += f" (paper schedule {span(paper)})"
    if any(f["budget_cut"] for f in fits):
        text += ", cut by the time budget"
    return text


def run_meta(records: Iterable[Mapping]) -> dict[tuple, str]:
    """{(profile, dataset, variant, split, method): 'cuda · 83,480 / 500,000 steps · seed 0'} for checked
    records: devices, steps done / scheduled (learned runs) and the seeds of the ok runs."""
    groups: dict[tuple, list[Mapping]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in KEYS), []).append(r)
    out = {}
    for key, recs in groups.items():
        ok = [r for r in recs if r["status"] == "ok"]
        parts = []
        devices = sorted({r["device"] for r in ok if r.get("device")})
        if devices:
            parts.append(", ".join(devices))
        steps = _steps_text(ok)
        if steps:
            parts.append(steps)
        seeds = sorted(r["seed"] for r in ok)
        if seeds:
            parts.append(("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds)))
        out[key] = " · ".join(parts)
    return out


def runs_frame(records: Iterable[Mapping], *, profile: str | None = None) -> pd.DataFrame:
    """One row per run (after de-duplication): keys, seed, status, error, train_seconds."""
    recs = _filter_profile(validate_records(records), profile)
    cols = list(KEYS) + ["seed", "status", "error", "train_seconds", "created"]
    return pd.DataFrame([{c: r[c] for c in cols} for r in recs], columns=cols)


def _value_rows(recs: Iterable[Mapping], by_length: bool) -> list[list]:
    """One row per (record, metric[, length]): the record's keys, seed, metric[, length], value."""
    rows = []
    for r in recs:
        base = [r[k] for k in KEYS] + [r["seed"]]
        if by_length:
            for metric, per_len in r["by_length"].items():
                rows.extend(base + [metric, L, v] for L, v in per_len.items())
        else:
            rows.extend(base + [metric, v] for metric, v in r["metrics"].items())
    return rows


def seed_values(records: Iterable[Mapping], *, profile: str | None = None, by_length: bool = False) -> pd.DataFrame:
    """Long per-seed values of ok runs: keys, seed, metric[, length], value (NaN kept), and the metric's
    identity columns (:data:`IDENTITY_FIELDS`, None where its records carry none)."""
    recs = _filter_profile(validate_records(records), profile)
    cols = list(KEYS) + ["seed", "metric"] + (["length"] if by_length else []) + ["value"]
    df = pd.DataFrame(_value_rows(recs, by_length), columns=cols)
    df["value"] = df["value"].astype(float)
    if by_length:
        df["length"] = df["length"].astype(int)
    return _with_identity(df, _identities(recs))


# ---------------------------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------------------------

AGG_COLUMNS = list(KEYS) + [
    "metric",
    "mean",
    "std",
    "n",
    "n_missing",
    "n_failed",
    "seeds",
    "train_seconds",
    *IDENTITY_FIELDS,
]


def _aggregate(recs: list[dict], by_length: bool) -> pd.DataFrame:
    extra = ["length"] if by_length else []
    cols = list(KEYS) + ["metric"] + extra + AGG_COLUMNS[len(KEYS) + 1 :]
    if not recs:
        return pd.DataFrame(columns=cols)
    infos = _identities(recs)
    keys = list(KEYS)
    runs = pd.DataFrame(
        [
            {
                **{k: r[k] for k in KEYS},
                "seed": r["seed"],
                "ok": r["status"] == "ok",
                "train_seconds": r["train_seconds"],
            }
            for r in recs
        ]
    )
    groups = runs.groupby(keys, sort=False).agg(n_runs=("ok", "size"), n_ok=("ok", "sum")).reset_index()
    ok_runs = runs[runs["ok"]]
    per_ok = (
        ok_runs.groupby(keys, sort=False)
        .agg(train_seconds=("train_seconds", "mean"), seeds=("seed", lambda s: ",".join(str(x) for x in sorted(s))))
        .reset_index()
    )
    groups = groups.merge(per_ok, on=keys, how="left")
    groups["n_failed"] = groups["n_runs"] - groups["n_ok"]

    rows = _value_rows([r for r in recs if r["status"] == "ok"], by_length)
    vals = pd.DataFrame(rows, columns=keys + ["seed", "metric"] + extra + ["value"])
    vals["value"] = vals["value"].astype(float)
    if by_length and not len(vals):
        return pd.DataFrame(columns=cols)
    # every metric (and length) measured in a section becomes a row for every method run there, so a
    # method whose runs all failed still shows up (n=0) with its failure count. In a section where
    # nothing succeeded the left merge leaves one row with metric NaN.
    section_metrics = vals[["profile", *SECTION_KEYS, "metric", *extra]].drop_duplicates()
    grid = groups.merge(section_metrics, on=["profile", *SECTION_KEYS], how="left")
    finite = vals[np.isfinite(vals["value"])]
    stats = (
        finite.groupby(keys + ["metric"] + extra, sort=False)["value"]
        .agg(mean="mean", std=lambda s: s.std(ddof=1), n="size")
        .reset_index()
    )
    out = _with_identity(grid.merge(stats, on=keys + ["metric"] + extra, how="left"), infos)
    out["n"] = out["n"].fillna(0).astype(int)
    out["n_missing"] = (out["n_ok"] - out["n"]).clip(lower=0).astype(int)
    out["n_failed"] = out["n_failed"].astype(int)
    out.loc[out["n"] < 2, "std"] = np.nan  # ddof=1 is undefined for one seed
    out = out[cols]
    if by_length:
        out = out.dropna(subset=["length"]).copy()
        out["length"] = out["length"].astype(int)
    sort_keys = [
        (
            dataset_sort_key(d),
            variant_sort_key(v),
            split_sort_key(s),
            p,
            m,
            metric_sort_key(x) if isinstance(x, str) else (10**9, ""),
            L,
        )
        for d, v, s, p, m, x, L in zip(
            out["dataset"],
            out["variant"],
            out["split"],
            out["profile"],
            out["method"],
            out["metric"],
            out["length"] if by_length else [0] * len(out),
        )
    ]
    order = sorted(range(len(out)), key=sort_keys.__getitem__)
    return out.iloc[order].reset_index(drop=True)


def aggregate(records: Iterable[Mapping[str, Any]], *, profile: str | None = None) -> pd.DataFrame:
    """One row per (profile, dataset, variant, split, method, metric) over seeds.

    Columns: profile, dataset, variant, split, method, metric, mean, std (ddof=1, NaN for n<2),
    n (ok runs with a finite value), n_missing (ok runs without one), n_failed (failed runs of the
    method on that split), seeds (ok seed ids, "0,1,2"), train_seconds (mean over ok runs), and the
    metric's identity as its latest record states it (label, unit, higher_is_better, family; None
    for records written before metrics carried one).
    ``profile`` keeps only records of that profile. A (method, split) whose runs all failed gets
    rows for the metrics other methods reported there (n=0), or one row with metric NaN.
    """
    recs = _filter_profile(validate_records(records), profile)
    return _aggregate(recs, by_length=False)


def aggregate_by_length(records: Iterable[Mapping[str, Any]], *, profile: str | None = None) -> pd.DataFrame:
    """As :func:`aggregate` from the records' ``by_length`` entries, with a ``length`` column."""
    recs = _filter_profile(validate_records(records), profile)
    return _aggregate(recs, by_length=True)


def failures(records: Iterable[Mapping[str, Any]], *, profile: str | None = None) -> pd.DataFrame:
    """Failed runs with their error text: keys, seed, error."""
    df = runs_frame(records, profile=profile)
    return df[df["status"] == "failed"][list(KEYS) + ["seed", "error"]].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# long CSV (ocbench aggregates + paper rows)
# ---------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "source",
    "tier",
    "profile",
    "dataset",
    "variant",
    "split",
    "method",
    "metric",
    "length",
    "mean",
    "std",
    "n",
    "n_missing",
    "n_failed",
    "seeds",
    "train_seconds",
    "protocol",
    "citation",
    "scale",
    "notes",
]
_CSV_INT = ("length", "n", "n_missing", "n_failed")
_CSV_FLOAT = ("mean", "std", "train_seconds")


def _csv_types(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    for c in _CSV_INT:
        df[c] = pd.to_numeric(df[c]).astype("Int64")
    for c in _CSV_FLOAT:
        df[c] = pd.to_numeric(df[c]).astype(float)
    for c in CSV_COLUMNS:
        if c not in _CSV_INT and c not in _CSV_FLOAT:
            df[c] = df[c].astype(object).where(df[c].notna(), None).astype("str")
            df.loc[df[c] == "None", c] = np.nan
            df[c] = df[c].astype("string")
    return df


def long_table(
    agg: pd.DataFrame,
    agg_by_length: pd.DataFrame | None,
    paper: pd.DataFrame | None,
    tiers: Mapping[tuple[str, str], str] | None = None,
) -> pd.DataFrame:
    """The long CSV frame: every aggregate row (source 'ocbench') and paper row (source 'paper'), each
    with its ``tier`` (:data:`TIERS`; ocbench rows from ``tiers`` = :func:`tier_map`, by default
    ``reference`` for the paper profile and ``yours`` for any other)."""
    parts = []
    for df in (agg, agg_by_length):
        if df is not None and len(df):
            d = df.copy()
            d["source"] = "ocbench"
            d["tier"] = [
                (tiers or {}).get((pr, m)) or ("reference" if pr == REFERENCE_PROFILE else "yours")
                for pr, m in zip(d["profile"], d["method"])
            ]
            parts.append(d)
    if paper is not None and len(paper):
        p = paper.rename(columns={"value": "mean", "source": "citation"}).copy()
        p["n"] = p["seeds"]  # runs averaged by the source (NaN: not stated)
        p["seeds"] = np.nan
        p["source"] = "paper"
        p["tier"] = "paper"
        parts.append(p)
    if not parts:
        return _csv_types(pd.DataFrame(columns=CSV_COLUMNS))
    out = pd.concat([p.reindex(columns=CSV_COLUMNS) for p in parts], ignore_index=True)
    return _csv_types(out)


def read_leaderboard_csv(path: str | Path) -> pd.DataFrame:
    """Read ``leaderboard.csv`` back with the column types :func:`long_table` produced."""
    df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"seeds": str})
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"path: {path} is not a leaderboard CSV (missing columns {missing})")
    return _csv_types(df[CSV_COLUMNS])


# ---------------------------------------------------------------------------------------------
# table layout shared by the Markdown and HTML writers
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Cell:
    mean: float
    std: float
    n: int | None
    metric: str
    info: MetricInfo | None = None

    @property
    def text(self) -> str:
        return format_cell(self.mean, self.std, self.n, self.info or MetricInfo(self.metric))


@dataclasses.dataclass
class Column:
    key: str  # metric; "metric@L10" in by-length and "metric@n3" in by-count tables
    metric: str
    length: int | None = None
    count: int | None = None
    info: MetricInfo | None = None

    @property
    def header(self) -> str:
        label = (self.info or MetricInfo(self.metric)).header()
        if self.length is not None:
            return f"{label} L={self.length}"
        if self.count is not None:
            return f"{label} n={self.count}"
        return label

    @property
    def arrow(self) -> str:
        return (self.info or MetricInfo(self.metric)).arrow


@dataclasses.dataclass
class Row:
    label: str
    method: str
    source: str  # "ocbench" | "paper"
    cells: dict[str, Cell]
    runs: str  # "3 ok, 1 failed" / "paper: 5 seeds"
    profile: str | None = None
    n_ok: int = 0
    n_failed: int = 0
    protocol: str | None = None
    citation: str | None = None
    notes: str | None = None
    train_seconds: float = math.nan
    tier: str = "yours"  # one of TIERS
    meta: str | None = None  # ocbench rows: devices, steps done / scheduled, seeds


@dataclasses.dataclass
class Table:
    dataset: str
    variant: str
    split: str  # "test_n*" for a by-count table
    kind: str  # "main" | "by_length" | "by_count"
    columns: list[Column]
    rows: list[Row]
    failed: list[tuple[str, int, str]] = dataclasses.field(default_factory=list)  # (who, seed, error)
    metric: str | None = None  # the one metric of a by-count table
    group: str | None = None  # the column group of a table split by family (COLUMN_GROUPS)

    @property
    def anchor(self) -> str:
        tail = {"main": "", "by_length": "-by-length", "by_count": f"-by-count-{self.metric}"}[self.kind]
        return _slug(f"{self.dataset}-{self.variant}-{self.split}{tail}" + (f"-{self.group}" if self.group else ""))

    @property
    def title(self) -> str:
        group = f" · {self.group}" if self.group else ""
        if self.kind == "by_length":
            return f"{self.variant} · {self.split} · by clip length{group}"
        if self.kind == "by_count":
            info = self.columns[0].info if self.columns and self.columns[0].info else MetricInfo(self.metric)
            return f"{self.variant} · {self.split} · {info.header(unit=False)} by object count"
        return f"{self.variant} · {self.split}{group}"

    def bands(self) -> list[tuple[str, list[Row]]]:
        """The rows grouped by tier, in :data:`TIERS` order (empty tiers left out)."""
        return [(t, [r for r in self.rows if r.tier == t]) for t in TIERS if any(r.tier == t for r in self.rows)]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _seeds_text(n: Any) -> str:
    return "seeds unknown" if n is None or pd.isna(n) else f"{int(n)} seed" + ("s" if int(n) != 1 else "")


def paper_label(method: str, protocol: str | None, seeds: Any) -> str:
    """'Slot Attention (paper, P320, 4 seeds)'."""
    parts = ["paper"] + ([protocol] if protocol else []) + [_seeds_text(seeds)]
    return f"{method_label(method)} ({', '.join(parts)})"


def _runs_text(n_ok: int, n_failed: int) -> str:
    return f"{n_ok} ok" + (f", {n_failed} failed" if n_failed else "")


def _ocbench_rows(
    df: pd.DataFrame,
    key,
    multi_profile: bool,
    infos: Mapping[str, MetricInfo],
    tiers: Mapping[tuple[str, str], str] | None = None,
    meta: Mapping[tuple, str] | None = None,
) -> list[Row]:
    """Rows of ocbench aggregates; ``key(row)`` gives the column key of an aggregate row.

    ``df`` must carry ``n_ok`` (see :func:`_with_n_ok`); over several splits (by-count tables) the
    run counts are summed. ``tiers`` ({(profile, method): tier}; default: profile ``paper`` is
    ``reference``, any other ``yours``) and ``meta`` (:func:`run_meta`) annotate the rows.
    """
    rows = []
    for (prof, method), g in df.groupby(["profile", "method"], sort=False):
        tier = (tiers or {}).get((prof, method)) or ("reference" if prof == REFERENCE_PROFILE else "yours")
        texts = [
            (meta or {}).get((prof, d, v, sp, method))
            for d, v, sp in dict.fromkeys(zip(g["dataset"], g["variant"], g["split"]))
        ]
        note = "; ".join(dict.fromkeys(t for t in texts if t)) or None
        cells = {
            key(r): Cell(r["mean"], r["std"], int(r["n"]), r["metric"], _info(infos, r["metric"]))
            for _, r in g.iterrows()
            if isinstance(r["metric"], str)
        }
        per_split = g.drop_duplicates(subset=["split"])
        n_ok, n_failed = int(per_split["n_ok"].sum()), int(per_split["n_failed"].sum())
        ts = per_split["train_seconds"].astype(float)
        rows.append(
            Row(
                label=method_label(method) + (f" [{prof}]" if multi_profile and tier != "reference" else ""),
                method=method,
                source="ocbench",
                cells=cells,
                profile=prof,
                runs=_runs_text(n_ok, n_failed),
                n_ok=n_ok,
                n_failed=n_failed,
                tier=tier,
                meta=note,
                train_seconds=float(ts.mean()) if ts.notna().any() else math.nan,
            )
        )
    return rows


def _paper_rows(df: pd.DataFrame, key, infos: Mapping[str, MetricInfo]) -> list[Row]:
    rows = []
    for (method, protocol), g in df.groupby(["method", "protocol"], sort=False, dropna=False):
        protocol = None if pd.isna(protocol) else str(protocol)
        cells = {
            key(r): Cell(
                float(r["value"]),
                float(r["std"]),
                None if pd.isna(r["seeds"]) else int(r["seeds"]),
                r["metric"],
                _info(infos, r["metric"]),
            )
            for _, r in g.iterrows()
        }
        notes = (
            "; ".join(
                dict.fromkeys(part.strip() for x in g["notes"].dropna() for part in str(x).split(";") if part.strip())
            )
            or None
        )
        seeds = g["seeds"].iloc[0]
        rows.append(
            Row(
                label=paper_label(method, protocol, seeds),
                method=method,
                source="paper",
                cells=cells,
                runs="paper: " + _seeds_text(seeds),
                protocol=protocol,
                citation="; ".join(dict.fromkeys(str(x) for x in g["source"])),
                notes=notes,
                tier="paper",
            )
        )
    return rows


def _with_n_ok(agg_part: pd.DataFrame) -> pd.DataFrame:
    """Add ``n_ok`` (ok runs of the method on the split) = max over its metrics of n + n_missing."""
    d = agg_part.copy()
    d["n_ok"] = d["n"] + d["n_missing"]
    if len(d):
        d["n_ok"] = d.groupby(list(KEYS))["n_ok"].transform("max")
    return d


#: A table with more metric columns than this is split by column group so that it reads on a laptop.
MAX_METRIC_COLUMNS = 10
#: family (the records' identity) -> column group of a split table; groups are shown in this order
COLUMN_GROUPS = {
    "segmentation": "segmentation",
    "semantic": "semantic & clustering",
    "clustering": "semantic & clustering",
    "tracking": "tracking",
    "reconstruction": "reconstruction",
    "perceptual": "reconstruction",
}
_GROUP_ORDER = ("segmentation", "semantic & clustering", "tracking", "reconstruction", "other")


def split_columns(cols: list[Column]) -> list[tuple[str | None, list[Column]]]:
    """``[(None, cols)]``, or, past :data:`MAX_METRIC_COLUMNS`, one part per column group (a column
    whose records state no family goes to 'other'); a group still wider is cut into even pieces in
    column order ('tracking 1/2', 'tracking 2/2')."""
    if len(cols) <= MAX_METRIC_COLUMNS:
        return [(None, cols)]
    groups: dict[str, list[Column]] = {}
    for c in cols:
        groups.setdefault(COLUMN_GROUPS.get((c.info.family if c.info else None) or "", "other"), []).append(c)
    out: list[tuple[str | None, list[Column]]] = []
    for g in (g for g in _GROUP_ORDER if g in groups):
        part = groups[g]
        n = -(-len(part) // MAX_METRIC_COLUMNS)
        size = -(-len(part) // n)
        out += [(g if n == 1 else f"{g} {i // size + 1}/{n}", part[i : i + size]) for i in range(0, len(part), size)]
    if len(out) == 1 and out[0][0] == "other":
        return [(None, cols)]
    return out


def _parts(
    ds: str, var: str, split: str, kind: str, cols: list[Column], rows: list[Row], failed: list[tuple[str, int, str]]
) -> list[Table]:
    """The table, split by column group when wide; a row goes to the parts where it has a measured value
    (a row without any, e.g. a method whose runs all failed, to the first); failures are listed under the
    first."""

    def measured(r: Row, keys: set[str]) -> bool:
        return any(k in keys and np.isfinite(c.mean) for k, c in r.cells.items())

    out = []
    for i, (group, part) in enumerate(split_columns(cols)):
        keys = {c.key for c in part}
        keep = [r for r in rows if measured(r, keys) or (i == 0 and not measured(r, set(r.cells)))]
        out.append(Table(ds, var, split, kind, part, keep, failed if i == 0 else [], group=group))
    return out


def build_tables(
    agg: pd.DataFrame,
    agg_by_length: pd.DataFrame,
    paper: pd.DataFrame | None,
    fails: pd.DataFrame | None = None,
    *,
    tiers: Mapping[tuple[str, str], str] | None = None,
    meta: Mapping[tuple, str] | None = None,
) -> dict[str, list[Table]]:
    """Group everything into tables per dataset: {dataset: [Table, ...]} in display order.

    - main: methods x metrics per (variant, split); paper rows without a length join them;
    - by_length: methods x (metric, L) from ``by_length`` aggregates and paper rows with a length;
    - by_count: the per-count splits ``test_n<k>`` (datasets.md §2) folded into one table per
      (variant, metric), methods x k, instead of one table per count.
    Main and by-length tables wider than :data:`MAX_METRIC_COLUMNS` are split by column group.
    Rows carry their tier (:data:`TIERS`; ``tiers`` from :func:`tier_map`) and ``meta``
    (:func:`run_meta`). Several non-reference profiles in one build are told apart by a "[profile]"
    suffix on the method label. Labels, units and directions come from the aggregates' identity
    columns (:func:`metric_infos`).
    """
    if paper is None:
        paper = pd.DataFrame(
            columns=[
                "dataset",
                "variant",
                "split",
                "method",
                "metric",
                "length",
                "value",
                "std",
                "seeds",
                "protocol",
                "source",
                "notes",
            ]
        )
    if fails is None:
        fails = pd.DataFrame(columns=list(KEYS) + ["seed", "error"])
    infos = metric_infos(agg, agg_by_length, paper=paper)
    agg, agg_by_length = _with_n_ok(agg), _with_n_ok(agg_by_length)
    multi_profile = bool(len(agg) and agg.loc[agg["profile"] != REFERENCE_PROFILE, "profile"].nunique() > 1)
    paper_main = paper[paper["length"].isna()]
    paper_len = paper[paper["length"].notna()]
    main_key = lambda r: r["metric"]  # noqa: E731
    len_key = lambda r: f"{r['metric']}@L{int(r['length'])}"  # noqa: E731

    sections: set[tuple[str, str, str]] = set()
    for df in (agg, agg_by_length, paper):
        sections |= set(zip(df["dataset"], df["variant"], df["split"]))
    tables: dict[str, list[Table]] = {}

    def sel(df: pd.DataFrame, ds: str, var: str, splits: Iterable[str]) -> pd.DataFrame:
        return df[(df["dataset"] == ds) & (df["variant"] == var) & df["split"].isin(list(splits))]

    def failed_of(ds: str, var: str, splits: list[str], with_split: bool) -> list[tuple[str, int, str]]:
        f = sel(fails, ds, var, splits)
        return [
            (
                method_label(r["method"]) + (f" ({r['split']})" if with_split else ""),
                int(r["seed"]),
                str(r["error"] or ""),
            )
            for _, r in f.iterrows()
        ]

    ordered = sorted(sections, key=lambda s: (dataset_sort_key(s[0]), variant_sort_key(s[1]), split_sort_key(s[2])))
    count_groups: dict[tuple[str, str], list[str]] = {}
    for ds, var, split in ordered:
        if count_of_split(split) is not None:
            count_groups.setdefault((ds, var), []).append(split)
            continue
        a, p = sel(agg, ds, var, [split]), sel(paper_main, ds, var, [split])
        has_main = bool(len(a) or len(p))
        if has_main:
            metrics = set(a["metric"].dropna()) | set(p["metric"])
            cols = [Column(m, m, info=_info(infos, m)) for m in sorted(metrics, key=metric_sort_key)]
            rows = _ocbench_rows(a, main_key, multi_profile, infos, tiers, meta) + _paper_rows(p, main_key, infos)
            tables.setdefault(ds, []).extend(
                _parts(ds, var, split, "main", cols, rows, failed_of(ds, var, [split], False))
            )
        a, p = sel(agg_by_length, ds, var, [split]), sel(paper_len, ds, var, [split])
        if len(a) or len(p):
            pairs = {(m, int(L)) for m, L in zip(a["metric"], a["length"])}
            pairs |= {(m, int(L)) for m, L in zip(p["metric"], p["length"])}
            cols = [
                Column(f"{m}@L{L}", m, length=L, info=_info(infos, m))
                for m, L in sorted(pairs, key=lambda t: (metric_sort_key(t[0]), t[1]))
            ]
            rows = _ocbench_rows(a, len_key, multi_profile, infos, tiers, meta) + _paper_rows(p, len_key, infos)
            # failures are listed once, under the main table when there is one
            tables.setdefault(ds, []).extend(
                _parts(ds, var, split, "by_length", cols, rows, [] if has_main else failed_of(ds, var, [split], False))
            )
    for (ds, var), splits in count_groups.items():
        a = sel(agg, ds, var, splits)
        a = a.assign(count=[count_of_split(s) for s in a["split"]])
        counts = sorted(set(a["count"]))
        metrics = sorted(set(a["metric"].dropna()), key=metric_sort_key)
        # one table per headline metric (the CSV keeps every metric of every count)
        metrics = [m for m in metrics if m in COUNT_TABLE_METRICS] or metrics
        failed = failed_of(ds, var, splits, True)
        for i, metric in enumerate(metrics or [None]):
            cols = (
                [Column(f"{metric}@n{k}", metric, count=k, info=_info(infos, metric)) for k in counts] if metric else []
            )
            part = a[(a["metric"] == metric) | a["metric"].isna()]
            rows = _ocbench_rows(part, lambda r: f"{r['metric']}@n{int(r['count'])}", multi_profile, infos, tiers, meta)
            tables.setdefault(ds, []).append(
                Table(ds, var, "test_n*", "by_count", cols, rows, failed if i == 0 else [], metric=metric or "none")
            )
    # the count tables of a dataset go after its other tables, variants in order
    for ds in tables:
        main = main_metric(ds)
        tables[ds].sort(
            key=lambda t: (
                t.kind == "by_count",
                variant_sort_key(t.variant) if t.kind == "by_count" else (0,),
                t.metric != main,
                metric_sort_key(t.metric or ""),
            )
        )
    return {ds: tables[ds] for ds in sorted(tables, key=dataset_sort_key)}


def neutral_note(tables: Mapping[str, Sequence[Table]]) -> str:
    """Sentences naming the columns without a stated identity (label, unit, direction), or ''."""
    old: set[str] = set()
    paper_only: set[str] = set()
    for ts in tables.values():
        for t in ts:
            for c in t.columns:
                if not (c.info and c.info.known):
                    ours = any(r.source == "ocbench" and c.key in r.cells for r in t.rows)
                    (old if ours else paper_only).add(c.metric)
    paper_only -= old
    parts = []
    if old:
        parts.append(
            f"Labelled by their key, without ↑/↓: {', '.join(sorted(old, key=metric_sort_key))}; their "
            f"records were written before each stored metric carried its label, unit and direction (a new "
            f"run states them)."
        )
    if paper_only:
        parts.append(
            f"Held only by paper rows, labelled by their key: "
            f"{', '.join(sorted(paper_only, key=metric_sort_key))} (in % where the source printed percent)."
        )
    return " ".join(parts)


# Markdown syntax a name or error text could carry: HTML and autolinks (<>), links and images ([]),
# code spans, table cells (|), entities (&), math on GitHub ($), strikethrough (~). Headings keep
# '*' and '_' (our own titles hold "test_n*"); cells and prose escape them too.
_MD_SPECIAL = re.compile(r"([\\`\[\]<>|&$~])")
_MD_SPECIAL_ALL = re.compile(r"([\\`\[\]<>|&$~*_])")


def _md_escape(text: str) -> str:
    """``text`` as literal Markdown (one line): every character with Markdown meaning backslash-escaped."""
    return _MD_SPECIAL_ALL.sub(r"\\\1", " ".join(str(text).splitlines()))


def _md_heading(text: str) -> str:
    """As :func:`_md_escape` but keeping '*' and '_' (emphasis cannot carry markup or links)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def to_markdown(
    tables: dict[str, list[Table]],
    *,
    title: str = "ocbench leaderboard",
    summary: str = "",
    figures: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Markdown: a table per dataset/variant/split, methods x metrics, 'mean ± std' with run counts.

    ``figures`` maps a dataset to relative image paths shown under its heading.
    """
    lines = [f"# {_md_heading(title)}", ""]
    if summary:
        lines += [_md_escape(summary), ""]
    lines += [
        "Cells are mean ± sample std over seeds (fractions shown in %, MSE raw, LPIPS raw); "
        '"n=1" marks a single seed. Each table has up to four tiers, each under its own bold row: '
        "**Published** (the papers' numbers, rows in *italics*, with protocol and source; P320 = over the "
        "first 320 test images), **ocbench reference runs** (the paper profile, trained on a GPU; device, "
        "steps done / scheduled and seeds in the source column), **Your runs** (ranked) and **Pipeline "
        "check** (learned methods trained for seconds under a short profile; not ranked).",
        "",
    ]
    if neutral_note(tables):
        lines += [_md_escape(neutral_note(tables)), ""]
    if not tables:
        lines += ["No runs recorded yet.", ""]
    lines += ["## Contents", ""]
    for ds in tables:
        lines.append(f"- [{_md_escape(dataset_label(ds))}](#{_slug(dataset_label(ds))})")
    lines.append("")
    for ds, tbls in tables.items():
        lines += [f"## {_md_heading(dataset_label(ds))}", ""]
        for fig in (figures or {}).get(ds, ()):  # figures.py names files with [A-Za-z0-9_.-] only
            lines += [f"![{_md_escape(dataset_label(ds))}]({fig})", ""]
        for t in tbls:
            lines += [f"### {_md_heading(dataset_label(ds))} · {_md_heading(t.title)}", ""]
            header = ["method"] + [f"{c.header} {c.arrow}".strip() for c in t.columns] + ["runs", "source"]
            lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * len(t.columns) + ["---", "---"]) + "|")
            for tier, rows in t.bands():
                name, _ = tier_title(tier, sorted({r.profile for r in rows if r.profile}))
                lines.append(f"| **{_md_escape(name)}** |" + " |" * (len(t.columns) + 2))
                for r in rows:
                    label = f"*{_md_escape(r.label)}*" if r.source == "paper" else _md_escape(r.label)
                    cells = [r.cells[c.key].text if c.key in r.cells else "—" for c in t.columns]
                    src = r.citation if r.source == "paper" else f"{r.profile} profile"
                    if r.meta:
                        src = f"{src} · {r.meta}"
                    if r.notes:
                        src = f"{src}; {r.notes}"
                    lines.append("| " + " | ".join([label] + [_md_escape(x) for x in [*cells, r.runs, src]]) + " |")
            lines.append("")
            if t.failed:
                lines.append(
                    "Failed runs: "
                    + "; ".join(f"{_md_escape(m)} seed {s}: {_md_escape(_short(e))}" for m, s, e in t.failed)
                )
                lines.append("")
    return "\n".join(lines)
