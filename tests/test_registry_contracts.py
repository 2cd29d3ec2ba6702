"""Tests generated from the registries (as timm does): every dataset x variant keeps the sample contract,
and every method fits, predicts and is scored on the smoke profile of the datasets it supports.

The parameters are collected at import from ``generators.registry()`` and ``baselines.methods()``, so a
new built-in dataset or method gets these tests without editing this file. Only built-ins are collected
(datasets rendered by a ``generators`` module, methods defined in ``baselines``): toy entries that other
test files register would otherwise make the collected set depend on which files run.

The method grid is cut to what 2 CPU cores run in seconds: every non-learned method on every dataset and
variant, every learned method on the cheapest image and the cheapest video dataset it supports (smallest
T*H*W*C); the rest of the product is marked ``slow`` (``make test-all``).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import baselines
import generators
from benchmark import runner, scoring
from benchmark.profiles import get_run_profile
from metrics import catalogue

# ----------------------------------------------------------------------------------------- collected


def _builtin_datasets() -> dict[str, generators.DatasetSpec]:
    return {
        n: s
        for n, s in sorted(generators.registry().items())
        if getattr(s.render, "__module__", "").startswith("generators.")
    }


def _builtin_methods() -> dict[str, type]:
    return {n: c for n, c in sorted(baselines.methods().items()) if c.__module__.startswith("baselines.")}


DATASETS = _builtin_datasets()
PAIRS = [(n, v) for n, s in DATASETS.items() for v in s.variants]
METHODS = _builtin_methods()
INFO = {(n, v): runner.info_from_spec(n, v) for n, v in PAIRS}  # renders train sample 0 of each


def _cost(pair) -> tuple:
    return (math.prod(INFO[pair].shape), PAIRS.index(pair))  # ties: the registry's order


def _method_grid() -> list:
    """(method, dataset, variant) params: the fast subset plain, the rest of the product marked slow."""
    params = []
    for m, cls in METHODS.items():
        ok = [p for p in PAIRS if cls.supports(INFO[p])]
        if cls.learned:
            fast = {min((p for p in ok if INFO[p].kind == k), key=_cost, default=None) for k in ("image", "video")}
        else:
            fast = set(ok)
        for p in ok:
            marks = () if p in fast else (pytest.mark.slow,)
            params.append(pytest.param(m, *p, marks=marks, id=f"{m}-{p[0]}-{p[1]}"))
    return params


# What each generator documents about hiding objects. A dataset whose objects may be fully hidden in a
# sample (so ``n_objects`` may exceed the ids in ``masks``) must be listed here; every other dataset must
# show every object it counts.
FULLY_HIDDEN_OK = {
    "multi_dsprites": "a fully hidden sprite keeps its objects row with 0 pixels (generators/multi_dsprites.py)",
    "scattered_mnist": "objects pass through one another; masks = last-drawn object (generators/scattered.py)",
    "scattered_shapes": "objects pass through one another; masks = last-drawn object (generators/scattered.py)",
}
# objects/* fields that describe the sample, not one object (so they are not [n, K_max, ...])
PER_SAMPLE_FIELDS = {"n_objects", "background_color"}
# objects/* fields holding each object's visible pixel count, [n, K] (whole sample) or [n, K, T] (per frame)
PIXEL_COUNT_FIELDS = ("pixels", "visible")


@pytest.fixture(scope="module", params=PAIRS, ids=[f"{n}-{v}" for n, v in PAIRS])
def rendered(request):
    """Samples 0 and 1 of the train split, rendered twice together and each once alone."""
    name, variant = request.param
    both = generators.render_samples(name, [0, 1], "train", variant)
    return {
        "name": name,
        "variant": variant,
        "spec": DATASETS[name],
        "out": both,
        "again": generators.render_samples(name, [0, 1], "train", variant),
        "alone": [generators.render_samples(name, [i], "train", variant) for i in (0, 1)],
    }


def _objects(out: dict) -> dict[str, np.ndarray]:
    return {k.split("/", 1)[1]: v for k, v in out.items() if k.startswith("objects/")}


def test_layout(rendered):
    spec, out = rendered["spec"], rendered["out"]
    video, masks = out["video"], out["masks"]
    assert video.dtype == np.uint8 and video.ndim == 5 and video.shape[0] == 2, (video.dtype, video.shape)
    n, T, H, W, C = video.shape
    assert C in (1, 3), C
    assert np.issubdtype(masks.dtype, np.integer) and masks.shape == (n, T, H, W), (masks.dtype, masks.shape)
    assert T == 1 if spec.kind == "image" else T > 1, (spec.kind, T)
    assert masks.min() >= 0
    assert set(out) == {"video", "masks"} | {k for k in out if k.startswith("objects/")}, sorted(out)
    obj = _objects(out)
    counts = obj["n_objects"]
    assert counts.shape == (n,) and np.issubdtype(counts.dtype, np.integer)
    per_object = {k: a for k, a in obj.items() if k not in PER_SAMPLE_FIELDS}
    assert per_object, "no per-object fields besides n_objects"
    k_max = {a.shape[1] if a.ndim >= 2 else None for a in per_object.values()}
    assert len(k_max) == 1 and None not in k_max, {k: a.shape for k, a in per_object.items()}
    k_max = k_max.pop()
    assert k_max >= counts.max() >= 0
    for k, a in per_object.items():  # rows past n_objects are padding: zeros
        for b in range(n):
            assert not np.any(a[b, counts[b] :]), f"objects/{k} sample {b}: rows >= n_objects={counts[b]} not zero"


def test_ids_and_counts(rendered):
    name, out = rendered["name"], rendered["out"]
    masks, obj = out["masks"], _objects(out)
    for b in range(masks.shape[0]):
        n_obj = int(obj["n_objects"][b])
        ids = set(np.unique(masks[b]).tolist()) - {0}
        assert ids <= set(range(1, n_obj + 1)), f"sample {b}: mask ids {sorted(ids)} outside 1..{n_obj}"
        if name in FULLY_HIDDEN_OK:
            assert len(ids) <= n_obj
        else:
            assert len(ids) == n_obj, (
                f"sample {b}: {n_obj} objects but {len(ids)} ids in masks; if {name} may "
                f"hide objects fully, document it and list it in FULLY_HIDDEN_OK"
            )
    field = next((f for f in PIXEL_COUNT_FIELDS if f in obj), None)
    if field is None:
        return
    got = obj[field]
    k_max = got.shape[1]
    # pixels of each id (per frame): the object's own count, also for ids hidden in some frames
    per_frame = np.stack([(masks == k + 1).sum(axis=(2, 3)) for k in range(k_max)], axis=1)  # [n, K, T]
    want = per_frame if got.ndim == 3 else per_frame.sum(-1)
    np.testing.assert_array_equal(got, want, err_msg=f"objects/{field} != pixels of each id in masks")


def _box_rc(box) -> tuple[int, int, int, int]:
    return tuple(int(v) for v in box)


def _where_tetrominoes(obj, b, k, t, spec, variant):
    r0, c0, r1, c1 = _box_rc(obj["bbox"][b, k])  # rows [r0, r1), columns [c0, c1)
    return ("box", (r0, c0, r1, c1))


def _where_scattered(obj, b, k, t, spec, variant):
    x0, y0, x1, y1 = _box_rc(obj["bbox"][b, k, t])  # (x, y) = (column, row), x1/y1 exclusive
    return ("box", (y0, x0, y1, x1))


def _where_bouncing(obj, b, k, t, spec, variant):
    x, y = obj["position"][b, k, t]
    return ("disc", (float(y), float(x), float(obj["radius"][b, k]) + 1.0))


def _where_dsprites(obj, b, k, t, spec, variant):
    from generators.multi_dsprites import _MAX_RADIUS

    base = float(spec.config(variant, "train")["base_size_px"])
    r = _MAX_RADIUS * base * float(obj["scale"][b, k]) + 1.0
    return ("disc", (float(obj["y_px"][b, k]), float(obj["x_px"][b, k]), r))


# where object k of sample b is in frame t, from each family's own fields (module docstrings)
WHERE = {
    "tetrominoes": _where_tetrominoes,
    "scattered_mnist": _where_scattered,
    "scattered_shapes": _where_scattered,
    "bouncing_balls": _where_bouncing,
    "multi_dsprites": _where_dsprites,
}


def test_each_id_is_where_its_object_is(rendered):
    """The pixels of id k in every frame lie inside object k-1's box or disc: ids are the objects' and stable."""
    name, out = rendered["name"], rendered["out"]
    if name not in WHERE:
        pytest.skip(f"no location check declared for {name}: add one to WHERE in {__file__}")
    masks, obj = out["masks"], _objects(out)
    n, T, H, W = masks.shape
    rr, cc = np.mgrid[0:H, 0:W]
    checked = 0
    for b in range(n):
        for k in range(int(obj["n_objects"][b])):
            for t in range(T):
                on = masks[b, t] == k + 1
                if not on.any():
                    continue
                shape, p = WHERE[name](obj, b, k, t, rendered["spec"], rendered["variant"])
                if shape == "box":
                    r0, c0, r1, c1 = p
                    inside = (rr >= r0) & (rr < r1) & (cc >= c0) & (cc < c1)
                else:
                    r, c, rad = p
                    inside = np.hypot(rr + 0.5 - r, cc + 0.5 - c) <= rad
                assert not np.any(on & ~inside), f"sample {b} frame {t}: id {k + 1} has pixels outside its object"
                checked += 1
    assert checked > 0


def test_same_bytes_again_and_alone(rendered):
    out = rendered["out"]
    for k, a in out.items():
        again = rendered["again"][k]
        assert again.dtype == a.dtype and again.shape == a.shape and again.tobytes() == a.tobytes(), k
        for i, alone in enumerate(rendered["alone"]):
            b = alone[k]
            assert b.dtype == a.dtype and b.shape == (1,) + a.shape[1:], (k, b.dtype, b.shape)
            assert b.tobytes() == a[i : i + 1].tobytes(), f"{k}: sample {i} rendered alone differs"


# ---------------------------------------------------------------------------------- method x dataset


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory):
    """One data root for the session; under xdist shared by the workers (split writes are atomic and
    locked, so two workers making the same split is safe), each split made on first use only."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "registry_smoke_data"
    made: set = set()

    def ensure(name: str, variant: str):
        if (name, variant) not in made:
            generators.generate(name, variant, "smoke", root=root)
            made.add((name, variant))
        return root

    return ensure


@pytest.mark.parametrize("method,dataset,variant", _method_grid())
def test_fit_predict_score(method, dataset, variant, smoke_root, tmp_path, monkeypatch):
    """One unit on the smoke profile: one ok record per test split with exactly the catalogue keys its inputs
    call for (kind, and whether the method returned recon / classes), each carrying its row's identity."""
    root = smoke_root(dataset, variant)
    seen = {"recon": set(), "classes": set()}
    check = scoring.check_prediction

    def spy(pred, *a, **kw):  # what the method really returned decides which rows apply
        got = check(pred, *a, **kw)
        seen["recon"].add(got.recon is not None)
        seen["classes"].add(got.classes is not None)
        return got

    monkeypatch.setattr(scoring, "check_prediction", spy)
    opts = runner.RunOptions(
        profile="smoke",
        device="cpu",
        results=tmp_path / "results",
        data_root=str(root),
        work_dir=tmp_path / "runs",
        progress=False,
    )
    unit = runner.Unit(method, dataset, variant, 0)
    records = runner.run_unit(unit, opts, log=lambda s: None)
    splits = runner.unit_splits(unit, "smoke")
    assert [r["split"] for r in records] == splits
    prof, spec, cls = get_run_profile("smoke"), DATASETS[dataset], METHODS[method]
    assert len(seen["recon"]) == 1 and len(seen["classes"]) == 1, seen  # recon / classes in every batch or none
    for rec in records:
        assert rec["status"] == "ok", f"{rec['split']}: {rec.get('phase')}: {rec.get('error')}"
        assert (rec["method"], rec["dataset"], rec["variant"], rec["seed"], rec["profile"]) == (
            method,
            dataset,
            variant,
            0,
            "smoke",
        )
        ds = generators.load(dataset, rec["split"], variant, "smoke", root)
        n = len(ds)
        if cls.learned and prof.learned_eval_frames is not None:
            n = min(n, max(1, prof.learned_eval_frames // ds.shape[0]))
        assert rec["n_samples"] == n
        inputs = {"masks"} | ({"video"} if spec.kind == "video" else set())
        if True in seen["recon"]:
            inputs.add("recon")
        if True in seen["classes"] and scoring.class_field(ds) is not None:
            inputs.add("classes")
        want = [m.key for m in catalogue.applicable(inputs)]
        assert sorted(rec["metrics"]) == sorted(want), set(rec["metrics"]) ^ set(want)
        for key, e in rec["metrics"].items():
            row = catalogue.metric(key)
            assert {f: e[f] for f in row.identity()} == row.identity(), key
            v = e["value"]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                assert e["status"] != "ok", (key, e)
                continue
            assert math.isfinite(v), (key, v)
            if row.unit == "fraction":
                assert v <= 1 + 1e-9, (key, v)
            elif row.unit == "count":
                assert v >= 0 and v == int(v), (key, v)
            else:
                assert v >= 0, (key, v)
