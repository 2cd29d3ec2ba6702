"""ocbench leaderboard: run records -> Markdown / CSV tables, a static HTML page and seaborn figures.

Imports nothing from the rest of ocbench (DESIGN.md "Layout"); it reads the plain run-record dicts
the harness writes. Entry points::

    aggregate(records, profile=None) -> DataFrame          # mean / std / n / n_failed over seeds
    build(records, out_dir, profile=None, paper=True, reference=True, problems=None)  # every output
    check_record(record)                                    # ValueError naming the field at fault
    load_paper_rows() -> DataFrame                          # published reference rows
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .html import render_html
from .labels import format_cell, main_metric, metric_kind
from .paper import load_paper_rows
from .records import check_record, read_records, validate_records
from .tables import (
    REFERENCE_PROFILE,
    TIERS,
    aggregate,
    aggregate_by_length,
    build_tables,
    failures,
    long_table,
    read_leaderboard_csv,
    run_meta,
    runs_frame,
    seed_values,
    tier_map,
    to_markdown,
)

__all__ = [
    "REFERENCE_PROFILE",
    "TIERS",
    "aggregate",
    "aggregate_by_length",
    "build",
    "check_record",
    "failures",
    "format_cell",
    "load_paper_rows",
    "main_metric",
    "metric_kind",
    "read_leaderboard_csv",
    "read_records",
    "seed_values",
]

_FIGURE_PREFIXES = ("bars_", "by_length_", "by_count_")


def _replace(path: Path, write) -> Path:
    """``write(tmp)`` then rename over ``path`` (atomic: the harness rebuilds while a page may be open).

    The leaderboard's one atomic write (pages, tables, figures). It imports no project package, so it does
    not use ``ocbench_common.files``, and follows the same scheme: a fresh ``.<name>.<random>.tmp`` beside
    ``path``, created exclusively without following links (a file or link planted at a guessed name is
    never written through), fsynced, renamed over ``path``; a failed write (a full disk) leaves no
    temporary behind.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, flags, 0o666))
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary file name for {path.name} in {path.parent}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_text(path: Path, text: str) -> Path:
    # "replace": a lone surrogate in a record (JSON "\ud800") cannot stop the page
    return _replace(path, lambda tmp: tmp.write_bytes(text.encode("utf-8", "replace")))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _summary(all_recs: list[dict], profile: str | None) -> str:
    """One line on the user's runs, then one on the reference runs shown beside them."""
    ref = [r for r in all_recs if r["profile"] == REFERENCE_PROFILE and profile != REFERENCE_PROFILE]
    recs = [r for r in all_recs if not (r["profile"] == REFERENCE_PROFILE and profile != REFERENCE_PROFILE)]
    tail = ""
    if ref:
        n_ok = sum(r["status"] == "ok" for r in ref)
        tail = (
            f" Beside them: {_count(len(ref), 'ocbench reference run')} of the '{REFERENCE_PROFILE}' profile "
            f"({n_ok} ok; {_count(len({r['method'] for r in ref}), 'method')}, "
            f"{_count(len({r['dataset'] for r in ref}), 'dataset')})."
        )
    if not recs:
        return "No ocbench runs recorded" + (f" for profile '{profile}'" if profile else "") + " yet." + tail
    n_ok = sum(r["status"] == "ok" for r in recs)
    profiles = sorted({r["profile"] for r in recs})
    revs = sorted({str(r["git_revision"]) for r in recs if r.get("git_revision")})
    latest = max((r["created"] for r in recs if r["created"]), default="")
    parts = [
        f"{_count(len(recs), 'run')} ({n_ok} ok, {len(recs) - n_ok} failed)",
        f"{_count(len({r['method'] for r in recs}), 'method')}, {_count(len({r['dataset'] for r in recs}), 'dataset')}",
        "profile" + ("s " if len(profiles) > 1 else " ") + ", ".join(profiles),
    ]
    if revs:
        parts.append("git " + ", ".join(revs[:5]) + (" …" if len(revs) > 5 else ""))
    if latest:
        parts.append(f"latest run {latest}")
    return " · ".join(parts) + "." + tail


def build(
    records: Iterable[Mapping[str, Any]],
    out_dir: str | Path,
    *,
    profile: str | None = None,
    paper: bool = True,
    reference: bool = True,
    problems: list[str] | None = None,
) -> dict[str, Path]:
    """Write the leaderboard into ``out_dir`` and return {relative name: path}.

    Outputs: ``leaderboard.md`` (a table per dataset/variant/split, methods x metrics, "mean ± std",
    run and failure counts; split by column group past ten metrics), ``leaderboard.csv`` (long format,
    ``source`` = "ocbench" | "paper", ``tier``), ``index.html`` (self-contained, sortable) and
    ``figures/*.png``. Each table shows its rows in tiers (:data:`TIERS`, decided here from the
    records, :func:`~leaderboard.tables.tier_map`): the papers' numbers, ocbench reference runs (records of the
    ``paper`` profile), the user's runs, and, under a short profile, learned methods apart as a
    pipeline check (left out of the figures too). ``profile`` keeps that profile's records and, unless
    ``reference=False``, the reference records; ``paper=False`` leaves out the published rows. An
    invalid record (:func:`check_record`) is left out and reported: its message is appended to
    ``problems`` when a list is given, else issued as a warning; the page says how many were left out.
    """
    bad: list[str] = []
    recs = validate_records(records, problems=bad)
    if problems is not None:
        problems.extend(bad)
    else:
        for msg in bad:
            warnings.warn(f"leaderboard: {msg}", stacklevel=2)
    if profile is not None:
        if not isinstance(profile, str) or not profile:
            raise TypeError(f"profile: expected a profile name (str) or None, got {profile!r}")
        keep = {profile} | ({REFERENCE_PROFILE} if reference else set())
        recs = [r for r in recs if r["profile"] in keep]
    elif not reference:
        recs = [r for r in recs if r["profile"] != REFERENCE_PROFILE]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"out_dir: {out} exists and is not a folder")
    from .figures import make_figures  # seaborn/matplotlib only when figures are drawn (import cost ~2 s)

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)

    agg = aggregate(recs)
    agg_len = aggregate_by_length(recs)
    paper_rows = load_paper_rows() if paper else None
    fails = failures(recs)
    tiers = tier_map(recs)
    shown = [r for r in recs if tiers[(r["profile"], r["method"])] != "pipeline"]  # figures rank what they show
    figs = make_figures(seed_values(shown), seed_values(shown, by_length=True), paper_rows, runs_frame(shown), fig_dir)
    written = {p for ps in figs.values() for p in ps}
    for old in fig_dir.glob("*.png"):  # figures of datasets no longer in the store
        if old.name.startswith(_FIGURE_PREFIXES) and old not in written:
            old.unlink()

    tables = build_tables(agg, agg_len, paper_rows, fails, tiers=tiers, meta=run_meta(recs))
    summary = _summary(recs, profile)
    if bad:
        summary += f" {len(bad)} invalid record{'s' if len(bad) > 1 else ''} left out (see the build's report)."
    title = "ocbench leaderboard" + (f" ({profile})" if profile else "")
    result: dict[str, Path] = {}
    md_figs = {ds: [f"figures/{p.name}" for p in ps] for ds, ps in figs.items()}
    result["leaderboard.md"] = _write_text(
        out / "leaderboard.md", to_markdown(tables, title=title, summary=summary, figures=md_figs)
    )
    long = long_table(agg, agg_len, paper_rows, tiers)
    result["leaderboard.csv"] = _replace(
        out / "leaderboard.csv", lambda tmp: long.to_csv(tmp, index=False, errors="replace")
    )
    result["index.html"] = _write_text(
        out / "index.html", render_html(tables, title=title, summary=summary, figures=figs)
    )
    for ps in figs.values():
        for p in ps:
            result[f"figures/{p.name}"] = p
    return result
