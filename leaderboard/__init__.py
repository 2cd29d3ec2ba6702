"""ocbench leaderboard: run records -> Markdown / CSV tables, a static HTML page and seaborn figures.

Imports nothing from the rest of ocbench (DESIGN.md "Layout"); it reads the plain run-record dicts
the harness writes. Entry points::

    aggregate(records, profile=None) -> DataFrame          # mean / std / n / n_failed over seeds
    build(records, out_dir, profile=None, paper=True, problems=None)  # writes every output, returns their paths
    check_record(record)                                    # ValueError naming the field at fault
    load_paper_rows() -> DataFrame                          # published reference rows
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

from .aggregate import (aggregate, aggregate_by_length, build_tables, check_record, failures, format_cell,
                        long_table, main_metric, metric_kind, read_leaderboard_csv, read_records, runs_frame,
                        seed_values, to_markdown, validate_records)
from .html import render_html
from .paper import load_paper_rows

__all__ = ["aggregate", "aggregate_by_length", "build", "check_record", "failures", "format_cell", "load_paper_rows",
           "main_metric", "metric_kind", "read_leaderboard_csv", "read_records", "seed_values"]

_FIGURE_PREFIXES = ("bars_", "by_length_", "by_count_")


def _replace(path: Path, write) -> Path:
    """``write(tmp)`` then rename over ``path`` (atomic: the harness rebuilds while a page may be open).

    A failed write (a full disk) leaves no temporary behind; a link planted at the temporary's name
    is removed, not written through.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_text(path: Path, text: str) -> Path:
    # "replace": a lone surrogate in a record (JSON "\ud800") cannot stop the page
    return _replace(path, lambda tmp: tmp.write_bytes(text.encode("utf-8", "replace")))


def _summary(recs: list[dict], profile: str | None) -> str:
    if not recs:
        return "No ocbench runs recorded" + (f" for profile '{profile}'" if profile else "") + " yet."
    n_ok = sum(r["status"] == "ok" for r in recs)
    profiles = sorted({r["profile"] for r in recs})
    revs = sorted({str(r["git_revision"]) for r in recs if r.get("git_revision")})
    latest = max((r["created"] for r in recs if r["created"]), default="")
    parts = [f"{len(recs)} runs ({n_ok} ok, {len(recs) - n_ok} failed)",
             f"{len({r['method'] for r in recs})} methods, {len({r['dataset'] for r in recs})} datasets",
             "profile" + ("s " if len(profiles) > 1 else " ") + ", ".join(profiles)]
    if revs:
        parts.append("git " + ", ".join(revs[:5]) + (" …" if len(revs) > 5 else ""))
    if latest:
        parts.append(f"latest run {latest}")
    return " · ".join(parts) + "."


def build(records: Iterable[Mapping[str, Any]], out_dir: str | Path, *, profile: str | None = None,
          paper: bool = True, problems: list[str] | None = None) -> dict[str, Path]:
    """Write the leaderboard into ``out_dir`` and return {relative name: path}.

    Outputs: ``leaderboard.md`` (a table per dataset/variant/split, methods x metrics, "mean ± std",
    run and failure counts, paper rows labelled with protocol and seeds), ``leaderboard.csv`` (long
    format, ``source`` = "ocbench" | "paper"), ``index.html`` (self-contained, sortable) and
    ``figures/*.png``. ``profile`` keeps only that profile's records; ``paper=False`` leaves out
    the published rows. An invalid record (:func:`check_record`) is left out and reported: its
    message is appended to ``problems`` when a list is given, else issued as a warning; the page
    says how many were left out.
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
        recs = [r for r in recs if r["profile"] == profile]
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
    runs = runs_frame(recs)
    figs = make_figures(seed_values(recs), seed_values(recs, by_length=True), paper_rows, runs, fig_dir)
    written = {p for ps in figs.values() for p in ps}
    for old in fig_dir.glob("*.png"):  # figures of datasets no longer in the store
        if old.name.startswith(_FIGURE_PREFIXES) and old not in written:
            old.unlink()

    tables = build_tables(agg, agg_len, paper_rows, fails)
    summary = _summary(recs, profile)
    if bad:
        summary += f" {len(bad)} invalid record{'s' if len(bad) > 1 else ''} left out (see the build's report)."
    title = "ocbench leaderboard" + (f" ({profile})" if profile else "")
    result: dict[str, Path] = {}
    md_figs = {ds: [f"figures/{p.name}" for p in ps] for ds, ps in figs.items()}
    result["leaderboard.md"] = _write_text(out / "leaderboard.md",
                                           to_markdown(tables, title=title, summary=summary, figures=md_figs))
    long = long_table(agg, agg_len, paper_rows)
    result["leaderboard.csv"] = _replace(out / "leaderboard.csv",
                                         lambda tmp: long.to_csv(tmp, index=False, errors="replace"))
    result["index.html"] = _write_text(out / "index.html",
                                       render_html(tables, title=title, summary=summary, figures=figs))
    for ps in figs.values():
        for p in ps:
            result[f"figures/{p.name}"] = p
    return result
