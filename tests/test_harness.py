"""The run end to end on a tiny dataset: plugins, resume, failures, records, CLI, external scores."""

import json
import textwrap

import numpy as np
import pytest

import generators
from baselines import DatasetInfo, MethodError, get_method, load_plugin, methods
from benchmark.cli import main
from benchmark.store import ResultsStore
from generators.core import DatasetSpec, Variant, register_dataset


def _render(cfg, seeds):
    """Two coloured squares moving right by one pixel per frame; id 1 red, id 2 green."""
    n, T, S = len(seeds), cfg["frames"], 12
    video = np.zeros((n, T, S, S, 3), np.uint8)
    masks = np.zeros((n, T, S, S), np.uint8)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        r1, r2 = rng.integers(0, 3), rng.integers(7, 9)
        for t in range(T):
            c = min(t, 6)
            masks[i, t, r1 : r1 + 3, c : c + 3] = 1
            video[i, t, r1 : r1 + 3, c : c + 3] = (255, 0, 0)
            masks[i, t, r2 : r2 + 3, c + 1 : c + 4] = 2
            video[i, t, r2 : r2 + 3, c + 1 : c + 4] = (0, 255, 0)
    return {"video": video, "masks": masks, "objects/n_objects": np.full(n, 2, np.int16)}


register_dataset(
    DatasetSpec(
        name="_toyrun",
        version="1.0.0",
        kind="video",
        base_config={"frames": 3},
        variants={"default": Variant()},
        default_variant="default",
        sizes={p: {"train": 6, "val": 2, "test": 4} for p in ("smoke", "quick", "paper")},
        render=_render,
    )
)

PLUGIN = textwrap.dedent("""
    import dataclasses
    import numpy as np
    from baselines import Method, Prediction, register_method

    @dataclasses.dataclass
    class Cfg:
        mode: str = "good"

    @register_method("toy_plugin", kinds={"video", "image", "colour", "binary"}, config=Cfg)
    class Toy(Method):
        def fit(self, train, val, ctx):
            if self.config.mode == "raise":
                raise RuntimeError("boom in fit")
            ctx.info["fitted_on"] = len(train)

        def predict(self, batch):
            v = np.asarray(batch["video"])
            masks = (v[..., 0] > 0).astype(np.int64) + 2 * (v[..., 1] > 0)
            if self.config.mode == "nan":
                return Prediction(masks=np.full(masks.shape, np.nan))
            if self.config.mode == "shape":
                return Prediction(masks=masks[:, 0])
            return Prediction(masks=masks, recon=v.astype(np.float32) / 255.0)
""")


@pytest.fixture()
def plugin(tmp_path):
    p = tmp_path / "toy_plugin.py"
    p.write_text(PLUGIN)
    return str(p)


def _run(tmp_path, plugin, *extra):
    return main(
        [
            "run",
            "--datasets",
            "_toyrun",
            "--methods",
            "toy_plugin",
            "--profile",
            "smoke",
            "--data-root",
            str(tmp_path / "data"),
            "--results",
            str(tmp_path / "res"),
            "--plugin",
            plugin,
            "--no-leaderboard",
            "--device",
            "cpu",
            *extra,
        ]
    )


def test_registry_roundtrip():
    reg = methods()
    assert "conncomp" in reg
    assert get_method("conncomp") is reg["conncomp"]
    with pytest.raises(MethodError, match="valid methods"):
        get_method("no_such_method")


def test_plugin_method_runs_end_to_end_and_resumes(tmp_path, plugin, capsys):
    assert _run(tmp_path, plugin) == 0
    store = ResultsStore(tmp_path / "res")
    recs = store.records("smoke")
    assert len(recs) == 1
    r = recs[0]
    assert r["status"] == "ok" and r["method"] == "toy_plugin" and r["split"] == "test"
    # the toy prediction is a perfect segmentation (ids 1/2 by colour)
    assert r["metrics"]["fg_ari"]["value"] == pytest.approx(1.0)
    assert r["metrics"]["mota"]["value"] == pytest.approx(1.0)
    assert r["metrics"]["mse"]["value"] == pytest.approx(0.0)
    # smoke scores learned methods on a fixed prefix of 8 frames: 2 of the 4 three-frame test videos
    assert r["metrics"]["fg_ari"]["n"] == 2 and r["n_samples"] == 2 and r["fit_info"]["fitted_on"] == 6
    for k in (
        "train_seconds",
        "eval_seconds",
        "device",
        "packages",
        "git_revision",
        "config_hash",
        "dataset_manifest_hash",
        "created",
    ):
        assert k in r
    # resume: a second run skips the stored record and leaves it untouched
    before = (tmp_path / "res" / "smoke" / f"{r['run_id']}.json").read_text()
    capsys.readouterr()
    assert _run(tmp_path, plugin) == 0
    out = capsys.readouterr()
    assert "1 skipped" in out.out
    assert (tmp_path / "res" / "smoke" / f"{r['run_id']}.json").read_text() == before


@pytest.mark.parametrize(
    "mode,phase,text",
    [("raise", "fit", "boom in fit"), ("nan", "eval", "NaN"), ("shape", "eval", "expected [B,T,H,W]")],
)
def test_failing_method_is_recorded_and_others_go_on(tmp_path, plugin, mode, phase, text):
    code = main(
        [
            "run",
            "--datasets",
            "_toyrun",
            "--methods",
            "toy_plugin",
            "conncomp",
            "--profile",
            "smoke",
            "--data-root",
            str(tmp_path / "data"),
            "--results",
            str(tmp_path / "res"),
            "--plugin",
            plugin,
            "--no-leaderboard",
            "--device",
            "cpu",
            "--set",
            f'toy_plugin.mode="{mode}"',
        ]
    )
    assert code == 1  # failures make the exit status non-zero
    recs = {r["method"]: r for r in ResultsStore(tmp_path / "res").records("smoke")}
    assert recs["toy_plugin"]["status"] == "failed" and text in recs["toy_plugin"]["error"]
    assert recs["toy_plugin"]["phase"] == phase
    assert recs["conncomp"]["status"] == "ok"


def test_corrupt_record_is_reported_not_dropped(tmp_path, plugin, capsys):
    assert _run(tmp_path, plugin) == 0
    bad = tmp_path / "res" / "smoke" / "garbage.json"
    bad.write_text("{oops")
    store = ResultsStore(tmp_path / "res")
    assert len(store.records("smoke")) == 1
    assert any("garbage.json" in p for p in store.problems)
    capsys.readouterr()
    assert main(["results", "--results", str(tmp_path / "res")]) == 0
    assert "garbage.json" in capsys.readouterr().err


def test_unknown_names_are_clear_errors(tmp_path, capsys):
    assert main(["run", "--datasets", "nope", "--profile", "smoke", "--results", str(tmp_path)]) == 2
    assert "valid datasets" in capsys.readouterr().err
    assert main(["run", "--methods", "nope", "--datasets", "_toyrun", "--results", str(tmp_path)]) == 2
    assert "valid methods" in capsys.readouterr().err


def test_plugin_errors(tmp_path):
    with pytest.raises(MethodError, match="does not exist"):
        load_plugin(tmp_path / "missing.py")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(MethodError, match="registered no method"):
        load_plugin(empty)


def test_conncomp_scored_as_computed_by_hand(tmp_path):
    """ConnComp on the toy videos: the two squares are separate components with stable ids."""
    generators.generate("_toyrun", profile="smoke", root=tmp_path)
    ds = generators.load("_toyrun", "test", profile="smoke", root=tmp_path)
    cls = get_method("conncomp")
    info = DatasetInfo("_toyrun", "default", "video", ds.shape, 2)
    model = cls(cls.make_config("_toyrun", "default"), info)
    pred = model.predict({"video": ds.video[:]}).masks
    gt = np.asarray(ds.masks)
    # the same partition as the ground truth, up to renaming: check pixel-exact with a mapping
    for b in range(len(ds)):
        mapping = {}
        for g, p in zip(gt[b].reshape(-1), pred[b].reshape(-1)):
            assert mapping.setdefault(int(g), int(p)) == int(p)
        assert mapping[0] == 0 and len(set(mapping.values())) == 3
    from benchmark.scoring import SplitScorer

    sc = SplitScorer("video", ds.shape[0])
    sc.update(gt, pred)
    m = sc.compute()["metrics"]
    assert m["fg_ari"]["value"] == 1.0 and m["num_switches"]["value"] == 0
    assert m["num_objects"]["value"] == 4 * 3 * 2  # 4 videos x 3 frames x 2 objects


def test_conncomp_merges_same_colour_touching_objects():
    """Colour alone cannot split two touching red squares: ConnComp's expected limitation."""
    v = np.zeros((1, 1, 8, 8, 3), np.uint8)
    v[0, 0, 1:4, 1:4] = (200, 0, 0)
    v[0, 0, 1:4, 4:7] = (120, 0, 0)  # darker shade of the same hue: cosine 1
    v[0, 0, 5:7, 1:3] = (0, 0, 255)
    cls = get_method("conncomp")
    m = cls(cls.make_config("x", "y"), None).predict({"video": v}).masks[0, 0]
    assert len(np.unique(m[1:4, 1:7])) == 1 and m[1, 1] != 0
    assert m[5, 1] not in (0, m[1, 1])
    assert (m[0] == 0).all()


def test_score_external_predictions(tmp_path):
    generators.generate("_toyrun", profile="smoke", root=tmp_path / "data")
    ds = generators.load("_toyrun", "test", profile="smoke", root=tmp_path / "data")
    good = tmp_path / "good.npz"
    np.savez(good, masks=np.asarray(ds.masks).astype(np.int32))
    code = main(
        [
            "score",
            "_toyrun",
            "--split",
            "test",
            "--profile",
            "smoke",
            "--predictions",
            str(good),
            "--data-root",
            str(tmp_path / "data"),
            "--method",
            "mine",
            "--results",
            str(tmp_path / "res"),
        ]
    )
    assert code == 0
    rec = ResultsStore(tmp_path / "res").records("smoke", method="mine")[0]
    assert rec["metrics"]["ari"]["value"] == 1.0
    bad = tmp_path / "bad.npz"
    np.savez(bad, masks=np.asarray(ds.masks)[:3])
    from benchmark.external import PredictionFileError, score_file

    with pytest.raises(PredictionFileError, match=r"expects \[N,T,H,W\] = \(4, 3, 12, 12\)"):
        score_file("_toyrun", "test", bad, profile="smoke", data_root=tmp_path / "data")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(PredictionFileError, match="not a readable"):
        score_file("_toyrun", "test", junk, profile="smoke", data_root=tmp_path / "data")
    np.savez(bad, masks=np.asarray(ds.masks).astype(np.float32))
    with pytest.raises(PredictionFileError, match="integer"):
        score_file("_toyrun", "test", bad, profile="smoke", data_root=tmp_path / "data")


def test_export_roundtrip(tmp_path):
    generators.generate("_toyrun", profile="smoke", root=tmp_path / "data")
    out = tmp_path / "x" / "test.npz"
    assert (
        main(
            [
                "export",
                "_toyrun",
                "--split",
                "test",
                "--profile",
                "smoke",
                "--out",
                str(out),
                "--data-root",
                str(tmp_path / "data"),
            ]
        )
        == 0
    )
    z = np.load(out)
    ds = generators.load("_toyrun", "test", profile="smoke", root=tmp_path / "data")
    assert np.array_equal(z["video"], ds.video) and np.array_equal(z["masks"], ds.masks)
    assert json.loads(str(z["manifest"]))["count"] == 4


def test_parallel_jobs_run_units_in_processes(tmp_path, plugin):
    """--jobs 2: units run in spawned worker processes (plugins re-imported there), records as usual."""
    code = main(
        [
            "run",
            "--datasets",
            "tetrominoes",
            "--methods",
            "conncomp",
            "toy_plugin",
            "--profile",
            "smoke",
            "--data-root",
            str(tmp_path / "data"),
            "--results",
            str(tmp_path / "res"),
            "--plugin",
            plugin,
            "--no-leaderboard",
            "--device",
            "cpu",
            "--jobs",
            "2",
        ]
    )
    assert code == 0
    recs = ResultsStore(tmp_path / "res").records("smoke")
    # conncomp: test and protocol320; the toy (learned) method: test only on smoke
    assert sorted((r["method"], r["split"]) for r in recs) == [
        ("conncomp", "protocol320"),
        ("conncomp", "test"),
        ("toy_plugin", "test"),
    ]
    assert all(r["status"] == "ok" for r in recs)
    assert recs[0]["metrics"]["fg_ari"]["value"] > 0.9  # ConnComp on Tetrominoes


IMAGE_PLUGIN = textwrap.dedent("""
    import numpy as np
    from baselines import Method, Prediction, register_method

    @register_method("toy_image_only", kinds={"image", "colour", "binary"})
    class ToyImage(Method):
        def fit(self, train, val, ctx):
            pass

        def predict(self, batch):
            v = np.asarray(batch["video"])
            assert v.shape[1] == 1, f"an image method must see single frames, got T={v.shape[1]}"
            # a new id per frame: stable within a frame, arbitrary over time (as image methods are)
            masks = (v[..., 0] > 0).astype(np.int64) + 2 * (v[..., 1] > 0)
            return Prediction(masks=np.where(masks > 0, masks + 2 * (np.arange(len(v)) % 2)[:, None, None, None], 0))
""")


def test_image_method_is_run_frame_by_frame_on_video(tmp_path):
    p = tmp_path / "image_plugin.py"
    p.write_text(IMAGE_PLUGIN)
    assert (
        main(
            [
                "run",
                "--datasets",
                "_toyrun",
                "--methods",
                "toy_image_only",
                "--profile",
                "smoke",
                "--data-root",
                str(tmp_path / "data"),
                "--results",
                str(tmp_path / "res"),
                "--plugin",
                str(p),
                "--no-leaderboard",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    r = ResultsStore(tmp_path / "res").records("smoke")[0]
    assert r["status"] == "ok"
    m = r["metrics"]
    # every frame is segmented perfectly, but ids change from frame to frame: the per-frame score is
    # perfect while the video (T·H·W) score and tracking pay for the switches
    assert m["fg_ari_frame"]["value"] == pytest.approx(1.0)
    assert m["fg_ari"]["value"] < 0.9
    assert m["num_switches"]["value"] > 0


def test_run_remakes_stale_and_corrupt_splits(tmp_path, plugin, monkeypatch, capsys):
    """The run makes missing splits, and remakes corrupt ones and ones made from another config."""
    import generators.core as core

    assert _run(tmp_path, plugin) == 0
    test_dir = generators.split_dir("_toyrun", "test", profile="smoke", root=tmp_path / "data")
    (test_dir / "masks.npy").write_bytes(b"garbage")
    spec = core._REGISTRY["_toyrun"]
    monkeypatch.setitem(
        core._REGISTRY, "_toyrun", spec.__class__(**{**spec.__dict__, "base_config": {"frames": 3, "note": "changed"}})
    )
    capsys.readouterr()
    assert _run(tmp_path, plugin, "--force") == 0
    err = capsys.readouterr().err
    assert "different config" in err or "sha256" in err or "bytes" in err
    for split in ("train", "val", "test"):
        ds = generators.load("_toyrun", split, profile="smoke", root=tmp_path / "data")
        assert ds.config["note"] == "changed"
