"""IDF1 and HOTA through ``run``: the record of a video run holds them with the catalogue's identity, combined
over videos as motmetrics and TrackEval combine sequences (counts pooled, never a mean of per-video scores),
and the leaderboard's video section shows MOTA, IDF1 and HOTA side by side."""

from __future__ import annotations

import importlib
import math
import textwrap

import numpy as np
import pandas as pd
import pytest

import generators
import metrics as M
from benchmark.cli import main
from benchmark.store import ResultsStore
from generators.core import DatasetSpec, Variant, register_dataset
from leaderboard import figures
from metrics.catalogue import CATALOGUE

T = 4


def _render(cfg, seeds):
    """A red square (id 1) in every video; a green one (id 2) in some: one or two objects per video."""
    n, S = len(seeds), 12
    video = np.zeros((n, T, S, S, 3), np.uint8)
    masks = np.zeros((n, T, S, S), np.uint8)
    n_obj = np.zeros(n, np.int16)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        n_obj[i] = 1 + int(rng.integers(0, 2))
        for t in range(T):
            masks[i, t, 1:4, 1 + t : 4 + t] = 1
            video[i, t, 1:4, 1 + t : 4 + t] = (255, 0, 0)
            if n_obj[i] == 2:
                masks[i, t, 7:10, 1 + t : 4 + t] = 2
                video[i, t, 7:10, 1 + t : 4 + t] = (0, 255, 0)
    return {"video": video, "masks": masks, "objects/n_objects": n_obj}


register_dataset(
    DatasetSpec(
        name="_toytrack",
        version="1.0.0",
        kind="video",
        base_config={"frames": T},
        variants={"default": Variant()},
        default_variant="default",
        sizes={p: {"train": 2, "val": 2, "test": 8} for p in ("smoke", "quick", "paper")},
        render=_render,
    )
)

PLUGIN = textwrap.dedent("""
    import numpy as np
    from baselines import Method, Prediction, register_method

    # a segment per colour (red 1, green 2); in a two-object video the ids swap from frame 2 on: perfect
    # detection, one identity switch per object
    @register_method("toy_swap_tracker", kinds={"video", "colour"}, learned=False)
    class ToySwap(Method):
        def fit(self, train, val, ctx):
            pass

        def predict(self, batch):
            v = np.asarray(batch["video"])
            red, green = v[..., 0] > 0, v[..., 1] > 0
            masks = red * 1 + green * 2
            two = green.any(axis=(1, 2, 3))  # a one-object video is tracked perfectly
            masks[two, 2:] = red[two, 2:] * 2 + green[two, 2:] * 1
            return Prediction(masks=masks.astype(np.int64), background_ids=(0,))
""")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trk")
    plugin = tmp / "toy_swap_tracker.py"
    plugin.write_text(PLUGIN)
    res = tmp / "res"
    assert (
        main(
            [
                "run",
                "--datasets",
                "_toytrack",
                "--methods",
                "toy_swap_tracker",
                "--profile",
                "smoke",
                "--data-root",
                str(tmp / "data"),
                "--results",
                str(res),
                "--plugin",
                str(plugin),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    (rec,) = list(ResultsStore(res).records("smoke"))
    split = generators.load("_toytrack", "test", profile="smoke", root=tmp / "data")
    return tmp, res, rec, split


def test_record_holds_identity_and_hota_with_catalogue_identity(run):
    _, _, rec, _ = run
    assert rec["status"] == "ok", rec.get("error")
    m = rec["metrics"]
    for k in ("idf1", "idp", "idr", "num_fragmentations", "hota", "deta", "assa", "loca"):
        e = m[k]
        assert {f: e[f] for f in ("version", "label", "unit", "higher_is_better", "family")} == CATALOGUE[
            k
        ].identity(), k
        assert e["status"] == "ok" and e["n"] == 8, (k, e)
    assert m["idf1"]["version"].startswith("identity/1") and m["hota"]["version"].startswith("hota/1")
    assert m["idf1"]["label"] == "IDF1" and m["hota"]["label"] == "HOTA" and m["hota"]["unit"] == "fraction"


def test_values_pool_counts_over_videos_by_hand(run):
    """One-object videos are tracked perfectly; a two-object video has 8 object-frames, IDTP 4 and AssA 1/3
    (§6.2 swap example). Pooled over n1 + n2 videos, which differs from the mean of per-video scores."""
    _, _, rec, split = run
    n_obj = np.asarray(split.objects["n_objects"])
    n1, n2 = int((n_obj == 1).sum()), int((n_obj == 2).sum())
    assert n1 and n2, "the split must mix one- and two-object videos, or pooled and mean values coincide"
    m = {k: e["value"] for k, e in rec["metrics"].items()}
    gt = 4 * n1 + 8 * n2
    assert m["num_objects"] == gt and m["num_switches"] == 2 * n2 and m["num_fragmentations"] == 0
    assert m["mota"] == pytest.approx(1 - 2 * n2 / gt)
    idf1 = 2 * (4 * n1 + 4 * n2) / (2 * gt)
    assert m["idf1"] == pytest.approx(idf1) and m["idp"] == pytest.approx(idf1) and m["idr"] == pytest.approx(idf1)
    assert m["idf1"] != pytest.approx((n1 * 1.0 + n2 * 0.5) / (n1 + n2))  # not a mean over videos
    assa = (4 * n1 * 1.0 + 8 * n2 / 3) / gt  # per-video AssA weighted by its true positives
    assert m["deta"] == pytest.approx(1.0) and m["loca"] == pytest.approx(1.0)
    assert m["assa"] == pytest.approx(assa) and m["hota"] == pytest.approx(math.sqrt(assa))
    assert m["hota"] != pytest.approx((n1 + n2 * math.sqrt(1 / 3)) / (n1 + n2))


def test_record_equals_the_library_on_the_whole_split(run):
    """The scorer's streamed, batched values equal one ``TrackingAccumulator(hota=True)`` call on the split."""
    _, _, rec, split = run
    gt = np.asarray(split.masks).astype(np.int64)
    v = np.asarray(split.video)
    red, green = v[..., 0] > 0, v[..., 1] > 0
    pred = red * 1 + green * 2
    two = green.any(axis=(1, 2, 3))
    pred[two, 2:] = red[two, 2:] * 2 + green[two, 2:] * 1
    acc = M.TrackingAccumulator(hota=True, background_ids=(0,))
    acc.update(gt, pred)
    ref = acc.compute()["summary"]
    for k in ("mota", "idf1", "idp", "idr", "num_fragmentations", "hota", "deta", "assa", "loca"):
        assert rec["metrics"][k]["value"] == pytest.approx(ref[k], abs=1e-12), k


def test_leaderboard_video_section_shows_mota_idf1_hota(run):
    _, res, _, _ = run
    (md,) = list(res.rglob("leaderboard.md"))
    text = md.read_text()
    header = next(line for line in text.splitlines() if "MOTA (%) ↑" in line)
    assert "| MOTA (%) ↑ | IDF1 (%) ↑ | HOTA (%) ↑ |" in header, header
    assert "Labelled by their key" not in text


def test_count_figure_draws_the_tracking_headline(monkeypatch, tmp_path):
    """The by-object-count figure of a video dataset has a row for MOTA, IDF1 and HOTA (and its main metric)."""
    rows_drawn = []
    monkeypatch.setattr(
        figures,
        "_line_panels",
        lambda data, x, rows, *a, **k: rows_drawn.append(
            (list(rows), sorted(set(data["metric"])), data.groupby("metric")["value"].max().to_dict())
        ),
    )
    seeds = []
    for k in (2, 3):
        for metric, v in (("mota", 0.5), ("idf1", 0.25), ("hota", 0.75), ("num_switches", 3.0)):
            seeds.append(
                {
                    "dataset": "scattered_mnist",
                    "variant": "v",
                    "split": f"test_n{k}",
                    "method": "conncomp",
                    "metric": metric,
                    "value": v,
                    "seed": 0,
                    "label": metric.upper(),
                    "unit": "count" if metric == "num_switches" else "fraction",
                    "higher_is_better": True,
                    "family": "tracking",
                }
            )
    figures.count_figure("scattered_mnist", pd.DataFrame(seeds), tmp_path / "f.png")
    ((rows, present, top),) = rows_drawn
    assert rows == ["mota", "idf1", "hota"] and present == ["hota", "idf1", "mota"]
    assert top == {"mota": 50.0, "idf1": 25.0, "hota": 75.0}  # fractions drawn in %
    assert importlib.import_module("leaderboard.labels").COUNT_TABLE_METRICS[:3] == ("mota", "idf1", "hota")


def test_undefined_tracking_values_in_a_record():
    """docs/metrics.md §6.3/§6.4/§11: objects but nothing predicted -> idp and loca NaN, DetA/AssA/HOTA 0 (TrackEval's
    guards), status no_detections; no GT and nothing predicted -> MOTA, IDF1 and the HOTA family NaN."""
    from benchmark.scoring import SplitScorer

    gt = np.zeros((2, T, 8, 8), np.uint8)
    gt[:, :, 1:4, 1:4] = 1
    sc = SplitScorer("video", T)
    sc.update(gt, np.zeros(gt.shape, np.int64), background_ids=(0,))
    m = sc.compute()["metrics"]
    assert math.isnan(m["idp"]["value"]) and math.isnan(m["loca"]["value"]) and m["idr"]["value"] == 0
    assert m["hota"]["value"] == m["deta"]["value"] == m["assa"]["value"] == m["idf1"]["value"] == 0
    assert {m[k]["status"] for k in ("idp", "loca", "hota", "mota")} == {"no_detections"}
    sc = SplitScorer("video", T)
    sc.update(np.zeros_like(gt), np.zeros(gt.shape, np.int64), background_ids=(0,))
    m = sc.compute()["metrics"]
    for k in ("mota", "idf1", "idp", "idr", "hota", "deta", "assa", "loca"):
        assert math.isnan(m[k]["value"]) and m[k]["status"] == "no_gt_objects", k
