"""The metric catalogue: the scorer emits exactly its keys, each stored with its identity, and a method
that returns classes gets semantic and clustering scores in its record and on the leaderboard."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import generators
import leaderboard
import metrics as M
from benchmark import scoring
from benchmark.cli import main
from benchmark.scoring import PredictionError, SplitScorer, check_prediction, pixel_classes, predict_batch
from benchmark.store import ResultsStore
from generators.core import DatasetSpec, Variant, register_dataset
from metrics import catalogue
from metrics.catalogue import CATALOGUE, FAMILIES, INPUTS, UNITS, Metric

# colour of each ground-truth class (0-based ``objects/class``): red 0, green 1, blue 2
COLOURS = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)


def _render(cfg, seeds):
    """Two squares per sample moving right: id 1 always red (class 0); id 2 green or blue (class 1 or 2)."""
    n, T, S = len(seeds), cfg["frames"], 12
    video = np.zeros((n, T, S, S, 3), np.uint8)
    masks = np.zeros((n, T, S, S), np.uint8)
    cls = np.zeros((n, 2), np.int16)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        r1, r2 = rng.integers(0, 3), rng.integers(7, 9)
        cls[i] = (0, rng.integers(1, 3))
        for t in range(T):
            c = min(t, 6)
            for k, (r, dc) in enumerate(((r1, 0), (r2, 1))):
                masks[i, t, r : r + 3, c + dc : c + dc + 3] = k + 1
                video[i, t, r : r + 3, c + dc : c + dc + 3] = COLOURS[cls[i, k]]
    return {"video": video, "masks": masks, "objects/n_objects": np.full(n, 2, np.int16), "objects/class": cls}


for _name, _kind, _frames in (("_toyclass", "video", 3), ("_toyclass_img", "image", 1)):
    register_dataset(
        DatasetSpec(
            name=_name,
            version="1.0.0",
            kind=_kind,
            base_config={"frames": _frames},
            variants={"default": Variant()},
            default_variant="default",
            sizes={p: {"train": 4, "val": 2, "test": 6} for p in ("smoke", "quick", "paper")},
            render=_render,
        )
    )

PLUGIN = textwrap.dedent("""
    import dataclasses
    import numpy as np
    from baselines import Method, Prediction, register_method

    @dataclasses.dataclass
    class Cfg:
        mode: str = "perfect"   # "perfect": a class per colour; "one": every segment in class 0

    # not learned: scored on every test sample
    @register_method("toy_classes", kinds={"video", "image", "colour", "binary"}, config=Cfg, learned=False)
    class ToyClasses(Method):
        def fit(self, train, val, ctx):
            pass

        def predict(self, batch):
            v = np.asarray(batch["video"])
            colour = (v[..., 0] > 0) * 1 + (v[..., 1] > 0) * 2 + (v[..., 2] > 0) * 3   # 0 bg, 1 r, 2 g, 3 b
            masks = colour.astype(np.int64)                                             # a segment per colour
            classes = np.tile(np.array([[9, 4, 6, 8]]), (len(v), 1))                    # the method's own ids
            if self.config.mode == "one":
                classes[:] = 0
            return Prediction(masks=masks, recon=v.astype(np.float32) / 255.0, classes=classes)
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both toy datasets scored by the plugin in both modes, through ``run``: {(dataset, mode): record}."""
    tmp = tmp_path_factory.mktemp("cat")
    plugin = tmp / "toy_classes.py"
    plugin.write_text(PLUGIN)
    out = {}
    for mode in ("perfect", "one"):
        res = tmp / f"res_{mode}"
        assert (
            main(
                [
                    "run",
                    "--datasets",
                    "_toyclass",
                    "_toyclass_img",
                    "--methods",
                    "toy_classes",
                    "--profile",
                    "smoke",
                    "--data-root",
                    str(tmp / "data"),
                    "--results",
                    str(res),
                    "--plugin",
                    str(plugin),
                    "--no-leaderboard",
                    "--device",
                    "cpu",
                    "--set",
                    f'toy_classes.mode="{mode}"',
                ]
            )
            == 0
        )
        for r in ResultsStore(res).records("smoke"):
            out[(r["dataset"], mode)] = r
    return tmp, out


def test_rows_are_well_formed():
    assert list(CATALOGUE) == [m.key for m in CATALOGUE.values()] and len(CATALOGUE) >= 20
    for key, m in CATALOGUE.items():
        assert m.family in FAMILIES and m.unit in UNITS and m.needs <= INPUTS and "masks" in m.needs, key
        assert m.label and m.aggregation and m.version.split("/")[0] in M.VERSIONS, key
        assert M.VERSIONS[m.version.split("/")[0]] == m.version, key  # the convention string of versions.py
        assert set(m.identity()) == {"version", "label", "unit", "higher_is_better", "family"}
    fams = {m.family for m in CATALOGUE.values()}
    assert fams == set(FAMILIES)
    assert CATALOGUE["num_switches"].higher_is_better is False and CATALOGUE["num_objects"].higher_is_better is None
    assert CATALOGUE["mse_sum"].unit == "squared error" and CATALOGUE["mse_sum"].higher_is_better is False
    with pytest.raises(KeyError, match="not in the catalogue"):
        catalogue.metric("cluster_acc")
    with pytest.raises(ValueError, match="family"):
        Metric("x", "x/1", "X", "fraction", True, "vibes", frozenset({"masks"}), "mean")
    with pytest.raises(ValueError, match="already"):
        catalogue.add(CATALOGUE["ari"])


IMAGE_KEYS = {"ari", "fg_ari", "miou", "mbo"}
VIDEO_KEYS = IMAGE_KEYS | {
    "ari_frame",
    "fg_ari_frame",
    "mota",
    "motp_iou",
    "num_objects",
    "num_matches",
    "num_switches",
    "num_misses",
    "num_false_positives",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_fragmentations",
    "idf1",
    "idp",
    "idr",
    "hota",
    "deta",
    "assa",
    "loca",
}
RECON_KEYS = {"mse", "mse_sum", "lpips_vgg"}
CLASS_KEYS = {
    "semantic_acc",
    "semantic_macc",
    "semantic_miou",
    "semantic_macc_dti",
    "semantic_miou_dti",
    "cluster_accuracy",
    "cluster_accuracy_m2o",
}


def test_exact_key_set_per_kind():
    """What an image and a video split report, by inputs; the identity and HOTA rows are tracking fractions
    carrying the convention strings of metrics/versions.py (one place, not registered by tracking.py)."""

    def keys(inputs):
        return {m.key for m in catalogue.applicable(inputs)}

    assert keys({"masks"}) == IMAGE_KEYS
    assert keys({"masks", "video"}) == VIDEO_KEYS
    assert keys({"masks", "recon"}) == IMAGE_KEYS | RECON_KEYS
    assert keys({"masks", "classes"}) == IMAGE_KEYS | CLASS_KEYS
    assert keys(INPUTS) == set(CATALOGUE) == VIDEO_KEYS | RECON_KEYS | CLASS_KEYS
    for k in ("idf1", "idp", "idr", "hota", "deta", "assa", "loca"):
        m = CATALOGUE[k]
        assert (m.family, m.unit, m.higher_is_better, m.needs) == (
            "tracking",
            "fraction",
            True,
            frozenset({"masks", "video"}),
        ), k
        assert "summed over videos" in m.aggregation and M.VERSIONS[k] == m.version, k
    assert CATALOGUE["idf1"].version.startswith("identity/1 ") and CATALOGUE["hota"].version.startswith("hota/1 ")
    assert "not a mean of per-video scores" in CATALOGUE["idf1"].aggregation
    assert "weighted by TP" in CATALOGUE["assa"].aggregation and "mean over the 19" in CATALOGUE["hota"].aggregation
    frag = CATALOGUE["num_fragmentations"]
    assert (frag.unit, frag.higher_is_better, frag.version) == ("count", False, M.VERSIONS["mot"])
    import metrics.tracking as tracking_module  # the versions live in versions.py only

    assert "VERSIONS.setdefault" not in Path(tracking_module.__file__).read_text(encoding="utf-8")
    assert M.VERSIONS["mot_boxes"].startswith("mot_boxes/1 ")


def test_scorer_emits_exactly_the_catalogue(runs):
    """Every emitted key has a row, every row is emitted somewhere; an image split lacks the video rows."""
    _, recs = runs
    emitted = set()
    for (ds, _mode), r in recs.items():
        assert r["status"] == "ok", r.get("error")
        keys = set(r["metrics"])
        assert keys <= set(CATALOGUE), keys - set(CATALOGUE)
        want = {
            m.key
            for m in catalogue.applicable({"masks", "recon", "classes"} | ({"video"} if ds == "_toyclass" else set()))
        }
        assert keys == want, keys ^ want
        for k, e in r["metrics"].items():  # each value carries its identity
            assert {kk: e[kk] for kk in ("version", "label", "unit", "higher_is_better", "family")} == CATALOGUE[
                k
            ].identity(), k
        emitted |= keys
    assert emitted == set(CATALOGUE), set(CATALOGUE) - emitted
    img = recs[("_toyclass_img", "perfect")]["metrics"]
    assert "mota" not in img and "fg_ari_frame" not in img and "cluster_accuracy" in img


def test_class_scores_by_hand(runs):
    """Perfect classes score 1; one cluster for everything gives the values computed from the split by hand."""
    tmp, recs = runs
    for ds in ("_toyclass", "_toyclass_img"):
        m = recs[(ds, "perfect")]["metrics"]
        for k in (
            "semantic_acc",
            "semantic_macc",
            "semantic_miou",
            "semantic_macc_dti",
            "semantic_miou_dti",
            "cluster_accuracy",
            "cluster_accuracy_m2o",
        ):
            assert m[k]["value"] == 1.0, (ds, k)
        assert m["cluster_accuracy"]["n_objects"] == 12 and m["cluster_accuracy"]["mapping"] == "hungarian"
        split = generators.load(ds, "test", profile="smoke", root=tmp / "data")
        gt = np.asarray(split.masks)
        cls = np.asarray(split.objects["class"])
        bg = (gt == 0).mean()
        m = recs[(ds, "one")]["metrics"]
        # one cluster: Hungarian maps it to background, the largest class; 4 classes (bg, red, green, blue)
        assert m["semantic_acc"]["value"] == pytest.approx(bg)
        assert m["semantic_macc"]["value"] == pytest.approx(1 / 4)
        assert m["semantic_miou"]["value"] == pytest.approx(bg / 4)
        # objects: 6 red, the rest green or blue; the one cluster goes to red (6 of 12)
        assert m["cluster_accuracy"]["value"] == pytest.approx(6 / 12)
        assert m["cluster_accuracy_m2o"]["value"] == pytest.approx(6 / 12)
        assert sorted(np.bincount(cls[:, 1], minlength=3)[1:]) != [0, 6]  # both green and blue occur


def test_streamed_scores_equal_the_reference_functions(runs):
    """The record's class scores equal metrics.semantic_scores / cluster_accuracy on the whole split."""
    tmp, recs = runs
    split = generators.load("_toyclass", "test", profile="smoke", root=tmp / "data")
    gt = np.asarray(split.masks).astype(np.int64)
    lut = np.concatenate([np.zeros((len(gt), 1), np.int64), np.asarray(split.objects["class"]) + 1], axis=1)
    true_cls = np.take_along_axis(lut, gt.reshape(len(gt), -1), 1).reshape(gt.shape)
    one = recs[("_toyclass", "one")]["metrics"]
    for mode, keys in (
        ("nanmean", ("semantic_macc", "semantic_miou")),
        ("dti", ("semantic_macc_dti", "semantic_miou_dti")),
    ):
        ref = M.semantic_scores(true_cls, np.zeros_like(true_cls), mode=mode)
        assert (one[keys[0]]["value"], one[keys[1]]["value"]) == pytest.approx((ref["macc"], ref["miou"]))
    obj_cls = np.asarray(split.objects["class"]).reshape(-1)
    ref = M.cluster_accuracy(obj_cls, np.zeros_like(obj_cls))
    assert one["cluster_accuracy"]["value"] == pytest.approx(ref["acc"])


def test_dti_convention_counts_absent_classes_as_zero():
    """Six declared classes, four with pixels, all perfectly predicted: ocbench's mean is 1, DTI's 4/6."""
    true = np.array([[[[0, 1], [2, 3]]]])
    sc = SplitScorer("image", 1, num_classes=6)
    sc.update(true, true, true_cls=true, pred_cls=true + 10)  # the method's own class ids
    m = sc.compute()["metrics"]
    assert m["semantic_macc"]["value"] == 1.0 and m["semantic_miou"]["value"] == 1.0
    assert m["semantic_macc_dti"]["value"] == pytest.approx(4 / 6) and m["semantic_miou_dti"]["value"] == pytest.approx(
        4 / 6
    )
    assert m["semantic_acc"]["value"] == 1.0 and m["semantic_acc"]["num_classes"] == 6


def test_classes_reach_the_leaderboard(runs, tmp_path):
    _, recs = runs
    paths = leaderboard.build([recs[("_toyclass", "one")], recs[("_toyclass_img", "perfect")]], tmp_path, paper=False)
    md = paths["leaderboard.md"].read_text()
    assert "clustering ACC (%) ↑" in md and "semantic mIoU (DTI) (%) ↑" in md and "MSE (sum over C·H·W) ↓" in md
    assert re.search(r"\| 50\.0( \(n=1\))? \|", md) and "Labelled by their key" not in md  # one seed


def test_a_row_without_producer_is_an_error(monkeypatch):
    monkeypatch.setitem(
        CATALOGUE,
        "semantic_bogus",
        Metric("semantic_bogus", "x/1", "bogus", "fraction", True, "semantic", frozenset({"masks"}), "none"),
    )
    sc = SplitScorer("image", 1)
    sc.update(np.ones((1, 1, 4, 4), np.uint8), np.ones((1, 1, 4, 4), np.int64))
    with pytest.raises(RuntimeError, match="semantic_bogus.*produced no value"):
        sc.compute()


def test_classes_contract():
    masks = np.array([[[[0, 2], [1, 1]]]])
    pred = type("P", (), {"masks": masks, "recon": None})
    for classes, match in (
        (np.array([[0, 1]]), "classes for 2 segment ids, but masks use id 2"),
        (np.array([[0.0, 1.0, 2.0]]), "dtype"),
        (np.array([[0, -1, 2]]), "negative"),
        (np.zeros((2, 3), int), r"shape \(2, 3\)"),
    ):
        pred.classes = classes
        with pytest.raises(PredictionError, match=match):
            check_prediction(pred, 1, 1, 2, 2, 1)
    pred.classes = np.array([[5, 6, 7]])
    got = check_prediction(pred, 1, 1, 2, 2, 1)
    assert pixel_classes(got.classes, got.masks).tolist() == [[[[5, 7], [6, 6]]]]
    # a batch that gives classes after one that did not is refused (a partial score would be mislabelled)
    sc = SplitScorer("image", 1)
    sc.update(masks, masks)
    with pytest.raises(PredictionError, match="every batch or for none"):
        sc.update(masks, masks, true_cls=masks, pred_cls=masks)


def test_frame_by_frame_classes_fold_back():
    """An image method on video returns [B*T,K] classes; the harness makes them [B,T,K], per frame."""

    class Img:
        frame_by_frame = True

        def predict(self, batch):
            v = np.asarray(batch["video"])
            n = len(v)
            return type(
                "P",
                (),
                {
                    "masks": np.ones(v.shape[:4], np.int64),
                    "recon": None,
                    "background_ids": (),
                    "classes": np.stack([np.zeros(n, int), np.arange(n)], 1),
                },
            )()

    pred = predict_batch(Img(), np.zeros((2, 3, 4, 4, 1), np.uint8), "cpu")
    got = check_prediction(pred, 2, 3, 4, 4, 1)
    assert got.classes.shape == (2, 3, 2)
    assert pixel_classes(got.classes, got.masks)[1, 2, 0, 0] == 5  # frame 2 of video 1 = folded frame 5


@pytest.mark.parametrize("name", sorted(scoring.CLASS_FIELDS))
def test_class_fields_of_the_builtin_datasets(name):
    """Each declared field exists, and its classes (+ offset) fall in 1..num_classes-1."""
    out = generators.render_samples(name, range(16))
    cf = scoring.CLASS_FIELDS[name]
    field = out[f"objects/{cf.field}"]
    present = np.arange(field.shape[1])[None] < out["objects/n_objects"][:, None]
    vals = field[present].astype(int) + cf.offset
    assert vals.min() >= 1 and vals.max() < cf.num_classes, (vals.min(), vals.max())


def test_external_predictions_with_classes(runs, tmp_path):
    """``score --predictions`` takes ``classes`` [N,K] beside the masks; the record gets the class scores."""
    from benchmark.external import PredictionFileError, score_file

    tmp, _ = runs
    split = generators.load("_toyclass_img", "test", profile="smoke", root=tmp / "data")
    masks = np.asarray(split.masks).astype(np.int32)
    classes = np.concatenate([np.zeros((len(masks), 1), int), np.asarray(split.objects["class"]) + 3], axis=1)
    good = tmp_path / "p.npz"
    np.savez(good, masks=masks, classes=classes)
    rec = score_file("_toyclass_img", "test", good, profile="smoke", data_root=tmp / "data")
    assert rec["metrics"]["cluster_accuracy"]["value"] == 1.0 and rec["metrics"]["semantic_miou"]["value"] == 1.0
    np.savez(good, masks=masks, classes=classes[:, :2])  # no class for id 2
    with pytest.raises(PredictionError, match="masks use id 2"):
        score_file("_toyclass_img", "test", good, profile="smoke", data_root=tmp / "data")
    np.savez(good, masks=masks, classes=classes[:3])
    with pytest.raises(PredictionFileError, match=r"expected \[N,K\]"):
        score_file("_toyclass_img", "test", good, profile="smoke", data_root=tmp / "data")
