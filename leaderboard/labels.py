"""What a reader sees of a metric, a dataset, a method: identity from the records, labels, orders and
number formatting (the leaderboard imports nothing of the rest of ocbench: DESIGN.md "Layout")."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

# ---------------------------------------------------------------------------------------------
# metric identity (from the records) and column order
# ---------------------------------------------------------------------------------------------

#: Column order of the tables; names not listed go after these (lpips_* beside lpips_vgg, others A-Z).
METRIC_ORDER: tuple[str, ...] = (
    "fg_ari",
    "ari",
    "fg_ari_frame",
    "ari_frame",
    "miou",
    "mbo",
    "mse",
    "mse_sum",
    "lpips_vgg",
    *("mota", "idf1", "hota"),  # the tracking headline (TRACKING_HEADLINE), then the rest of the family
    "motp_iou",
    "deta",
    "assa",
    "loca",
    "idp",
    "idr",
    "num_switches",
    "num_fragmentations",
    "num_misses",
    "num_false_positives",
    "num_matches",
    "num_objects",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "semantic_acc",
    "semantic_macc",
    "semantic_miou",
    "semantic_macc_dti",
    "semantic_miou_dti",
    "cluster_accuracy",
    "cluster_accuracy_m2o",
)

#: the identity fields a record's metric entry may carry (``metrics/catalogue.py`` writes them)
IDENTITY_FIELDS = ("label", "unit", "higher_is_better", "family")
# display kind of each unit of the catalogue; any other unit is shown as a plain number
_UNIT_KINDS = {"fraction": "percent", "count": "count", "squared error": "mse", "distance": "lpips"}


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """What a metric is, as its records say: label, unit, direction and family.

    The leaderboard never guesses these from a name. A metric whose records predate stored
    identities (or that only paper rows hold) is neutral: labelled by its key, no direction, shown
    as a plain number; a paper row whose source printed it in percent makes it a fraction.
    """

    key: str
    label: str | None = None
    unit: str | None = None
    higher_is_better: bool | None = None
    family: str | None = None

    @property
    def known(self) -> bool:
        return self.label is not None

    @property
    def kind(self) -> str:
        """Display kind: 'percent', 'mse', 'lpips', 'count' or 'other'."""
        return _UNIT_KINDS.get(self.unit or "", "other")

    def header(self, *, unit: bool = True) -> str:
        """Human label, e.g. 'FG-ARI (%)'."""
        return (self.label or self.key) + (" (%)" if unit and self.kind == "percent" else "")

    @property
    def arrow(self) -> str:
        return "" if self.higher_is_better is None else ("↑" if self.higher_is_better else "↓")


def _info(infos: Mapping[str, MetricInfo] | None, key: str) -> MetricInfo:
    return (infos or {}).get(key) or MetricInfo(key)


def metric_kind(info: MetricInfo | str) -> str:
    """Display kind of a metric (:attr:`MetricInfo.kind`); a bare name is neutral ('other')."""
    return info.kind if isinstance(info, MetricInfo) else "other"


def metric_infos(*frames: pd.DataFrame | None, paper: pd.DataFrame | None = None) -> dict[str, MetricInfo]:
    """Identity of every metric in frames from :func:`aggregate` / :func:`seed_values` (their
    identity columns), then, for metrics only paper rows know, what their CSV says: ``scale``
    "percent" (the source printed a percentage) makes a fraction shown in %; label and direction stay
    neutral."""
    out: dict[str, MetricInfo] = {}
    for df in frames:
        if df is None or not len(df) or "label" not in df.columns:
            continue
        known = df[df["label"].notna() & df["metric"].notna()].drop_duplicates(subset=["metric"])
        for _, r in known.iterrows():
            hib = r["higher_is_better"]
            out.setdefault(
                r["metric"],
                MetricInfo(
                    str(r["metric"]),
                    str(r["label"]),
                    None if pd.isna(r["unit"]) else str(r["unit"]),
                    hib if isinstance(hib, (bool, np.bool_)) else None,
                    None if pd.isna(r["family"]) else str(r["family"]),
                ),
            )
    if paper is not None and len(paper):
        for key, g in paper.groupby("metric", sort=False):
            if key not in out and "scale" in g.columns and (g["scale"] == "percent").any():
                out[str(key)] = MetricInfo(str(key), unit="fraction")
    return out


def _identities(recs: Iterable[Mapping]) -> dict[str, MetricInfo]:
    """Per metric, the identity of its latest record that carries one (``created``; ties: the later one)."""
    out: dict[str, MetricInfo] = {}
    for r in sorted(recs, key=lambda r: r["created"]):
        out.update(r.get("identity") or {})
    return out


def _with_identity(df: pd.DataFrame, infos: Mapping[str, MetricInfo]) -> pd.DataFrame:
    """``df`` with the identity columns of each row's metric (None where its records carry none)."""
    df = df.copy()
    for f in IDENTITY_FIELDS:
        df[f] = pd.Series(
            [getattr(infos[m], f) if isinstance(m, str) and m in infos else None for m in df["metric"]],
            index=df.index,
            dtype=object,
        )
    return df


#: The tracking headline columns of video sections (issue 11): CLEAR-MOT, identity and HOTA.
TRACKING_HEADLINE = ("mota", "idf1", "hota")

#: Metrics that get a "by object count" table (the SILOT-style generalisation curves).
COUNT_TABLE_METRICS = (*TRACKING_HEADLINE, "fg_ari", "miou", "num_switches")

#: Main metric per dataset for the bar figures (task brief): MOTA for the SILOT sets, else FG-ARI.
_MAIN_METRIC_PREFIX = (("scattered", "mota"),)

DATASET_ORDER = ("tetrominoes", "multi_dsprites", "bouncing_balls", "scattered_mnist", "scattered_shapes")
_DATASET_LABELS = {
    "tetrominoes": "Tetrominoes",
    "multi_dsprites": "Multi-dSprites",
    "bouncing_balls": "Bouncing Balls",
    "scattered_mnist": "Scattered MNIST",
    "scattered_shapes": "Scattered Shapes",
    "movi_a": "MOVi-A-like",
    "movi_a_like": "MOVi-A-like",
}
_METHOD_LABELS = {
    "slot_attention": "Slot Attention",
    "iodine": "IODINE",
    "monet": "MONet",
    "dti_sprites": "DTI-Sprites",
    "rnem": "R-NEM",
    "seq_iodine": "SEQ-IODINE",
    "provide": "PROVIDE",
    "conncomp": "ConnComp",
    "silot": "SILOT",
    "sqair": "SQAIR",
    "slate": "SLATE",
    "savi": "SAVi",
    "steve": "STEVE",
    "slotdiffusion": "SlotDiffusion",
    "slot_diffusion": "SlotDiffusion",
    "genesis": "GENESIS",
}
_COUNT_SPLIT = re.compile(r"^(?P<base>.*?)_?n(?P<k>\d+)$")


def metric_sort_key(metric: str) -> tuple:
    """Sort key that puts metrics in the order of :data:`METRIC_ORDER`."""
    if metric in METRIC_ORDER:
        return (METRIC_ORDER.index(metric), "")
    if metric.startswith("lpips"):
        return (METRIC_ORDER.index("lpips_vgg"), metric)
    return (len(METRIC_ORDER), metric)


def main_metric(dataset: str, available: Iterable[str] = ()) -> str:
    """The metric shown in a dataset's bar figure: mota for scattered_*, fg_ari otherwise.

    If ``available`` is given and lacks that metric, the first available one in table order is used.
    """
    wanted = "fg_ari"
    for prefix, metric in _MAIN_METRIC_PREFIX:
        if dataset.startswith(prefix):
            wanted = metric
    avail = list(available)
    if avail and wanted not in avail:
        return sorted(avail, key=metric_sort_key)[0]
    return wanted


def dataset_label(dataset: str) -> str:
    return _DATASET_LABELS.get(dataset, dataset.replace("_", " ").title())


def method_label(method: str) -> str:
    return _METHOD_LABELS.get(method, method)


def natural_key(text: str) -> tuple:
    """'test_n10' after 'test_n9'."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text)))


def dataset_sort_key(dataset: str) -> tuple:
    return (DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else len(DATASET_ORDER), dataset)


def variant_sort_key(variant: str) -> tuple:
    return (variant != "default", natural_key(variant))


def split_sort_key(split: str) -> tuple:
    """test first, then protocol320, then other splits in natural order."""
    rank = {"test": 0, "protocol320": 1}.get(split, 2)
    return (rank, natural_key(split))


def count_of_split(split: str) -> int | None:
    """Object count of a per-count test split ('test_n7' -> 7), else None (datasets.md §2 Splits)."""
    m = _COUNT_SPLIT.match(split)
    return int(m.group("k")) if m and m.group("base").startswith("test") else None


# ---------------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------------


def _mse_style(x: float) -> str:
    a = abs(x)
    if a == 0 or 1e-4 <= a < 100:  # the paper rows' precision: .0004 (Zablotskaia et al. 2020, Table 1)
        return "{:.4f}"
    if a >= 100:  # mse_sum (docs/metrics.md §7) is in the hundreds
        return "{:.1f}"
    return "{:.2e}"


def format_number(value: float, metric: MetricInfo | str, *, like: float | None = None) -> str:
    """One number in the metric's display format (:attr:`MetricInfo.kind`); '—' for NaN.

    ``like``: format MSE values the way this other value (the mean) is formatted, so that a std is
    written "0.0011 ± 0.0001" rather than mixing fixed and scientific notation.
    """
    if value is None or not np.isfinite(value):
        return "—"
    kind = metric_kind(metric)
    if kind == "percent":
        return f"{100 * value:.1f}"
    if kind == "mse":
        return _mse_style(value if like is None else like).format(value)
    if kind == "lpips":
        return f"{value:.3f}"
    if kind == "count":
        return f"{value:.0f}"
    return f"{value:.4g}"


def format_cell(mean: float, std: float, n: int | None, metric: MetricInfo | str) -> str:
    """'99.1 ± 0.3'; '93.0 (n=1)' for a single seed; '—' when nothing was measured.

    ``n`` None means the number of runs is not known (paper rows without a stated seed count).
    """
    if mean is None or not np.isfinite(mean):
        return "—"
    text = format_number(mean, metric)
    if std is not None and np.isfinite(std):
        return f"{text} ± {format_number(std, metric, like=mean)}"
    if n == 1:
        return f"{text} (n=1)"
    return text


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
