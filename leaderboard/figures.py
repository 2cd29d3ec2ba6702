"""Seaborn figures of the leaderboard (PNG, matplotlib's Agg canvas, no pyplot global state).

- ``bars_<dataset>.png``: the dataset's main metric (FG-ARI; MOTA for scattered_*), one panel per
  (variant, split); a bar = mean over seeds with a ±1 sample-std error bar, dots = the seeds, a
  diamond = the paper value with its published std. Per-count splits (``test_n<k>``) are left to
  the count figure.
- ``by_length_<dataset>.png``: metric against clip length (records' ``by_length`` and the paper rows
  with a ``length``), one row per metric and one column per (variant, split); solid = ocbench
  (band: ±1 sd over seeds), dashed = paper.
- ``by_count_<dataset>.png``: main metric, and the tracking headline (MOTA, IDF1, HOTA) where the
  records hold it, against the object count of the ``test_n<k>`` splits (the SILOT paper's Fig. 5
  axis, datasets.md §2), one row per metric, one panel per variant.

A method keeps one colour in every figure of a build (``method_palette``). Names come from records,
so every text drawn escapes ``$`` (no mathtext), and a dataset name that is not a plain file name
becomes ``<slug>-<hash>`` in the figure's file name, which is proven to stay in ``out_dir``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .labels import (
    TRACKING_HEADLINE,
    MetricInfo,
    count_of_split,
    dataset_label,
    main_metric,
    method_label,
    metric_infos,
    metric_sort_key,
    split_sort_key,
    variant_sort_key,
)

_DPI = 110
_STYLE = "whitegrid"
_CONTEXT = "notebook"


def method_palette(methods: Iterable[str]) -> dict[str, tuple]:
    """A fixed colour per method name (sorted, so the same set always gets the same colours)."""
    names = sorted(set(methods))
    colours = sns.color_palette("tab10" if len(names) <= 10 else "tab20", max(len(names), 1))
    return {m: colours[i % len(colours)] for i, m in enumerate(names)}


_PLAIN_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _plain(text: object) -> str:
    """``text`` drawn as written: every ``$`` escaped, so matplotlib never parses it as mathtext."""
    return str(text).replace("$", r"\$")


def _mlabel(method: str) -> str:
    return _plain(method_label(method))


def file_stem(name: str) -> str:
    """``name`` if it is a plain file name, else a slug of it plus a hash (distinct names stay distinct)."""
    if _PLAIN_STEM.fullmatch(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-_.")[:40] or "x"
    return f"{slug}-{hashlib.sha256(name.encode('utf-8', 'backslashreplace')).hexdigest()[:12]}"


def _inside(root: Path, name: str) -> Path:
    """``root/name`` for a bare file name, proven to be a child of the resolved ``root``.

    The file itself is not resolved: it is replaced (``os.replace``), never written through a link.
    """
    real_root = Path(root).resolve()
    if name in ("", ".", "..") or (real_root / name).parent != real_root or "\x00" in name:
        raise ValueError(f"figure file name {name!r} would leave {real_root}")
    return Path(root) / name


def _info(infos: Mapping[str, MetricInfo], metric: str) -> MetricInfo:
    return infos.get(metric) or MetricInfo(metric)


def _scale(info: MetricInfo) -> float:
    return 100.0 if info.kind == "percent" else 1.0


def _label(info: MetricInfo) -> str:
    return _plain(info.header())


def _save(fig: Figure, path: Path) -> Path:
    from . import _replace  # the leaderboard's one atomic write (a page being viewed never sees half a PNG)

    path.parent.mkdir(parents=True, exist_ok=True)
    return _replace(_inside(path.parent, path.name), lambda tmp: fig.savefig(tmp, dpi=_DPI, format="png"))


def _panel_name(variant: str, split: str) -> str:
    return _plain(f"{variant} · {split}")


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols


def bar_figure(
    dataset: str,
    seeds: pd.DataFrame,
    paper: pd.DataFrame | None,
    runs: pd.DataFrame | None,
    path: str | Path,
    *,
    palette: Mapping[str, tuple] | None = None,
    infos: Mapping[str, MetricInfo] | None = None,
) -> Path | None:
    """Bars of the main metric with seed error bars; returns the path, or None if there is no data.

    seeds: per-seed values (``aggregate.seed_values``); paper: ``load_paper_rows()`` or None;
    runs: ``aggregate.runs_frame`` (for the failed-run counts under the method names) or None.
    infos: metric identities (``aggregate.metric_infos``); by default those of ``seeds`` and ``paper``.
    """
    s = seeds[seeds["dataset"] == dataset] if len(seeds) else seeds
    p = paper[(paper["dataset"] == dataset) & paper["length"].isna()] if paper is not None and len(paper) else None
    available = set(s["metric"]) if len(s) else set()
    if p is not None:
        available |= set(p["metric"])
    if not available:
        return None
    metric = main_metric(dataset, available)
    s = s[(s["metric"] == metric) & np.isfinite(s["value"])] if len(s) else s
    if p is not None:
        p = p[p["metric"] == metric]
    panels = set()
    for df in (s, p):
        if df is not None and len(df):
            panels |= {(v, sp) for v, sp in zip(df["variant"], df["split"]) if count_of_split(sp) is None}
    if not panels:
        return None
    panels = sorted(panels, key=lambda t: (variant_sort_key(t[0]), split_sort_key(t[1])))
    palette = dict(palette or method_palette(list(s["method"]) + ([] if p is None else list(p["method"]))))
    multi_profile = len(s) and s["profile"].nunique() > 1
    info = _info(metric_infos(seeds, paper=paper) if infos is None else infos, metric)
    scale = _scale(info)
    nrows, ncols = _grid(len(panels))
    with sns.axes_style(_STYLE), sns.plotting_context(_CONTEXT, font_scale=0.8):
        fig = Figure(figsize=(max(6.5, 4.2 * ncols + 0.4), 3.6 * nrows + 0.8), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
        for ax in axes.flat[len(panels) :]:
            ax.set_visible(False)
        for ax, (var, split) in zip(axes.flat, panels):
            d = s[(s["variant"] == var) & (s["split"] == split)].copy() if len(s) else s
            pp = p[(p["variant"] == var) & (p["split"] == split)] if p is not None else None
            methods = sorted(set(d["method"]) | (set(pp["method"]) if pp is not None else set()), key=method_label)
            labels = [_mlabel(m) for m in methods]
            if len(d):
                d["label"] = d["method"].map(_mlabel)
                d["profile"] = d["profile"].map(_plain)  # the hue legend's labels
                d["value"] = d["value"] * scale
                hue = "profile" if multi_profile else "label"
                kw = (
                    {"palette": "Greys", "hue_order": sorted(d["profile"].unique())}
                    if multi_profile
                    else {"palette": {_mlabel(m): palette[m] for m in methods if m in palette}, "hue_order": labels}
                )
                sns.barplot(
                    data=d,
                    x="label",
                    y="value",
                    order=labels,
                    hue=hue,
                    errorbar="sd",
                    capsize=0.25,
                    err_kws={"linewidth": 1.2},
                    legend=bool(multi_profile),
                    ax=ax,
                    alpha=0.85,
                    **kw,
                )
                sns.stripplot(
                    data=d,
                    x="label",
                    y="value",
                    order=labels,
                    hue=hue if multi_profile else None,
                    dodge=bool(multi_profile),
                    color="black",
                    size=3.5,
                    jitter=0.12,
                    ax=ax,
                    legend=False,
                    **({"palette": "dark:black", "hue_order": kw["hue_order"]} if multi_profile else {}),
                )
            else:
                ax.set_xticks(range(len(labels)))
                ax.set_xlim(-0.5, len(labels) - 0.5)
            if pp is not None and len(pp):
                for _, r in pp.iterrows():
                    x = labels.index(_mlabel(r["method"]))
                    err = None if pd.isna(r["std"]) else r["std"] * scale
                    ax.errorbar(
                        [x],
                        [r["value"] * scale],
                        yerr=None if err is None else [[err], [err]],
                        fmt="D",
                        color="black",
                        mfc="white",
                        mec="black",
                        ms=7,
                        capsize=4,
                        zorder=5,
                    )
            ticks = []
            for m, lab in zip(methods, labels):
                nf = 0
                if runs is not None and len(runs):
                    sel = runs[
                        (runs["dataset"] == dataset)
                        & (runs["variant"] == var)
                        & (runs["split"] == split)
                        & (runs["method"] == m)
                        & (runs["status"] == "failed")
                    ]
                    nf = len(sel)
                ticks.append(lab + (f"\n({nf} failed)" if nf else ""))
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(
                ticks, rotation=30 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center"
            )
            ax.set_xlabel("")
            ax.set_ylabel(_label(info))
            ax.set_title(_panel_name(var, split))
            ax.axhline(0, color="0.3", linewidth=0.8)
        handles = [
            Patch(facecolor="0.6", label="ocbench: mean ± 1 sd over seeds"),
            Line2D([], [], marker="o", linestyle="", color="black", markersize=4, label="one seed"),
        ]
        if p is not None and len(p):
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="D",
                    linestyle="",
                    mfc="white",
                    mec="black",
                    color="black",
                    label="paper (published mean ± std)",
                )
            )
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False)
        fig.suptitle(_plain(f"{dataset_label(dataset)}: {info.header()}"))
        return _save(fig, Path(path))


def _line_panels(
    data: pd.DataFrame,
    x: str,
    rows: list[str],
    panels: list[tuple[str, str]],
    palette: Mapping[str, tuple],
    title: str,
    xlabel: str,
    path: Path,
    infos: Mapping[str, MetricInfo],
) -> Path:
    """Grid of lineplots: one row per metric, one column per panel; hue = method, style = source."""
    labels = sorted(data["label"].unique())
    pal = {_mlabel(m): c for m, c in palette.items()}
    sources = [s for s in ("ocbench", "paper") if s in set(data["source"])]
    with sns.axes_style(_STYLE), sns.plotting_context(_CONTEXT, font_scale=0.8):
        fig = Figure(figsize=(max(6.5, 4.2 * len(panels) + 0.4), 3.0 * len(rows) + 1.0), layout="constrained")
        axes = fig.subplots(len(rows), len(panels), squeeze=False, sharex=True, sharey="row")
        for i, metric in enumerate(rows):
            for j, (var, split) in enumerate(panels):
                ax = axes[i, j]
                d = data[(data["metric"] == metric) & (data["variant"] == var) & (data["split"] == split)]
                if len(d):
                    sns.lineplot(
                        data=d,
                        x=x,
                        y="value",
                        hue="label",
                        hue_order=labels,
                        palette=pal,
                        style="source",
                        style_order=sources,
                        markers={"ocbench": "o", "paper": "D"},
                        dashes={"ocbench": "", "paper": (4, 2)},
                        errorbar="sd",
                        err_style="band",
                        ax=ax,
                        legend=False,
                    )
                ax.set_ylabel(_label(_info(infos, metric)) if j == 0 else "")
                ax.set_xlabel(xlabel if i == len(rows) - 1 else "")
                if i == 0:
                    ax.set_title(_panel_name(var, split))
                xs = sorted(data[x].unique())
                ax.set_xticks(xs)
        handles = [Line2D([], [], color=pal.get(lab, "0.5"), linewidth=2, label=lab) for lab in labels]
        handles += [Line2D([], [], color="0.3", marker="o", label="ocbench (band: ±1 sd over seeds)")]
        if "paper" in sources:
            handles += [Line2D([], [], color="0.3", marker="D", linestyle=(0, (4, 2)), label="paper")]
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), frameon=False)
        fig.suptitle(_plain(title))
        return _save(fig, path)


def length_figure(
    dataset: str,
    seeds_by_length: pd.DataFrame,
    paper: pd.DataFrame | None,
    path: str | Path,
    *,
    palette: Mapping[str, tuple] | None = None,
    infos: Mapping[str, MetricInfo] | None = None,
) -> Path | None:
    """Metrics against clip length (ocbench ``by_length`` seeds and paper rows with a length)."""
    parts = []
    s = seeds_by_length[seeds_by_length["dataset"] == dataset] if len(seeds_by_length) else seeds_by_length
    if len(s):
        d = s[np.isfinite(s["value"])][["variant", "split", "method", "metric", "length", "value"]].copy()
        d["source"] = "ocbench"
        parts.append(d)
    if paper is not None and len(paper):
        p = paper[(paper["dataset"] == dataset) & paper["length"].notna()]
        if len(p):
            d = p[["variant", "split", "method", "metric", "length", "value"]].copy()
            d["length"] = d["length"].astype(int)
            d["source"] = "paper"
            parts.append(d)
    if not parts:
        return None
    data = pd.concat(parts, ignore_index=True)
    infos = metric_infos(seeds_by_length, paper=paper) if infos is None else infos
    data["value"] = data["value"].astype(float) * data["metric"].map(lambda m: _scale(_info(infos, m)))
    data["label"] = data["method"].map(_mlabel)
    data["length"] = data["length"].astype(int)
    rows = sorted(data["metric"].unique(), key=metric_sort_key)
    panels = sorted(
        {(v, sp) for v, sp in zip(data["variant"], data["split"])},
        key=lambda t: (variant_sort_key(t[0]), split_sort_key(t[1])),
    )
    palette = dict(palette or method_palette(data["method"]))
    return _line_panels(
        data,
        "length",
        rows,
        panels,
        palette,
        f"{dataset_label(dataset)}: metric against clip length (first L frames)",
        "clip length L (frames)",
        Path(path),
        infos,
    )


def count_figure(
    dataset: str,
    seeds: pd.DataFrame,
    path: str | Path,
    *,
    palette: Mapping[str, tuple] | None = None,
    infos: Mapping[str, MetricInfo] | None = None,
) -> Path | None:
    """Main metric and the tracking headline (MOTA, IDF1, HOTA, those present) against the object count of
    the ``test_n<k>`` splits, one row each; None without two counts."""
    s = seeds[seeds["dataset"] == dataset] if len(seeds) else seeds
    if not len(s):
        return None
    s = s.assign(count=[count_of_split(x) for x in s["split"]])
    s = s[s["count"].notna() & np.isfinite(s["value"])]
    if s["count"].nunique() < 2:
        return None
    metric = main_metric(dataset, set(s["metric"]))
    rows = [metric] + [m for m in TRACKING_HEADLINE if m != metric and m in set(s["metric"])]
    d = s[s["metric"].isin(rows)].copy()
    d["count"] = d["count"].astype(int)
    infos = metric_infos(seeds) if infos is None else infos
    d["value"] = d["value"] * np.array([_scale(_info(infos, m)) for m in d["metric"]], float)
    d["label"] = d["method"].map(_mlabel)
    d["source"] = "ocbench"
    d["split"] = "test_n*"
    panels = sorted({(v, "test_n*") for v in d["variant"]}, key=lambda t: variant_sort_key(t[0]))
    palette = dict(palette or method_palette(d["method"]))
    names = ", ".join(_info(infos, m).header() for m in rows)
    return _line_panels(
        d,
        "count",
        rows,
        panels,
        palette,
        f"{dataset_label(dataset)}: {names} against the number of objects",
        "objects per video (test_n<k>)",
        Path(path),
        infos,
    )


def make_figures(
    seeds: pd.DataFrame,
    seeds_by_length: pd.DataFrame,
    paper: pd.DataFrame | None,
    runs: pd.DataFrame | None,
    out_dir: str | Path,
) -> dict[str, list[Path]]:
    """All figures of a build into ``out_dir``: {dataset: [paths]} (datasets without data get none)."""
    out_dir = Path(out_dir)
    methods = set(seeds["method"]) if len(seeds) else set()
    methods |= set(seeds_by_length["method"]) if len(seeds_by_length) else set()
    if paper is not None and len(paper):
        methods |= set(paper["method"])
    palette = method_palette(methods)
    infos = metric_infos(seeds, seeds_by_length, paper=paper)
    datasets = set(seeds["dataset"]) if len(seeds) else set()
    datasets |= set(seeds_by_length["dataset"]) if len(seeds_by_length) else set()
    if paper is not None and len(paper):
        datasets |= set(paper["dataset"])
    out: dict[str, list[Path]] = {}
    for ds in sorted(datasets):
        stem = file_stem(ds)
        paths = [
            bar_figure(ds, seeds, paper, runs, _inside(out_dir, f"bars_{stem}.png"), palette=palette, infos=infos),
            length_figure(
                ds, seeds_by_length, paper, _inside(out_dir, f"by_length_{stem}.png"), palette=palette, infos=infos
            ),
            count_figure(ds, seeds, _inside(out_dir, f"by_count_{stem}.png"), palette=palette, infos=infos),
        ]
        out[ds] = [p for p in paths if p is not None]
    return out
