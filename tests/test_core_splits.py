"""The split machinery: seeds, atomic writing, manifest verification, loader, bad names."""

import json

import numpy as np
import pytest

import generators
from generators.core import DatasetSpec, Variant, register_dataset, sample_seed


def _toy_render(cfg, seeds):
    n = len(seeds)
    T, S = cfg["frames"], cfg["size"]
    video = np.zeros((n, T, S, S, 3), np.uint8)
    masks = np.zeros((n, T, S, S), np.uint8)
    pos = np.zeros((n, 2, 2), np.int16)
    nobj = np.zeros(n, np.int16)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        k = rng.integers(1, 3)
        nobj[i] = k
        for j in range(k):
            r, c = rng.integers(0, S - 2, 2)
            pos[i, j] = (r, c)
            masks[i, :, r : r + 2, c : c + 2] = j + 1
            video[i, :, r : r + 2, c : c + 2] = 100 + 50 * j
    return {"video": video, "masks": masks, "objects/n_objects": nobj, "objects/pos": pos}


TOY = register_dataset(
    DatasetSpec(
        name="_toy",
        version="1.0.0",
        kind="video",
        base_config={"frames": 2, "size": 8},
        variants={
            "a": Variant(seed_key="shared"),
            "b": Variant(config={"note": "same scenes, other rendering"}, seed_key="shared"),
            "c": Variant(),
        },
        default_variant="a",
        sizes={p: {"train": 10, "test": 7} for p in ("smoke", "quick", "paper")},
        render=_toy_render,
        views={"first3": ("test", 3)},
        chunk=3,
    )
)


def test_seeds_are_stable_and_distinct():
    a = sample_seed("x", "v", "1.2.0", "train", 5)
    assert a == sample_seed("x", "v", "1.9.9", "train", 5)  # minor versions share seeds
    assert a != sample_seed("x", "v", "2.0.0", "train", 5)
    assert a != sample_seed("x", "v", "1.2.0", "test", 5)
    assert a != sample_seed("x", "v", "1.2.0", "train", 6)


def test_generate_load_verify(tmp_path):
    paths = generators.generate("_toy", profile="smoke", root=tmp_path)
    assert set(paths) == {"train", "test"}
    ds = generators.load("_toy", "test", profile="smoke", root=tmp_path)
    assert len(ds) == 7 and ds.shape == (2, 8, 8, 3)
    item = ds[3]
    assert item["video"].shape == (2, 8, 8, 3) and item["masks"].dtype.is_floating_point is False
    man = json.loads((paths["test"] / "manifest.json").read_text())
    assert man["count"] == 7 and man["config"]["size"] == 8 and set(man["files"]) >= {"video.npy", "masks.npy"}
    # one sample regenerated alone equals its copy in the split (chunk boundaries at 3, 6)
    for i in (0, 4, 6):
        alone = generators.render_samples("_toy", [i], "test")
        assert np.array_equal(alone["video"][0], ds.video[i])
        assert np.array_equal(alone["objects/pos"][0], ds.objects["pos"][i])
    view = generators.load("_toy", "first3", profile="smoke", root=tmp_path)
    assert len(view) == 3 and np.array_equal(view.video, ds.video[:3])


def test_workers_give_same_bytes(tmp_path):
    a = generators.generate_split("_toy", "train", profile="smoke", root=tmp_path / "one", workers=1)
    b = generators.generate_split("_toy", "train", profile="smoke", root=tmp_path / "two", workers=2)
    ma = json.loads((a / "manifest.json").read_text())["files"]
    mb = json.loads((b / "manifest.json").read_text())["files"]
    assert {k: v["sha256"] for k, v in ma.items()} == {k: v["sha256"] for k, v in mb.items()}


def test_shared_seed_key_shares_samples(tmp_path):
    a = generators.render_samples("_toy", range(4), "train", "a")
    b = generators.render_samples("_toy", range(4), "train", "b")
    c = generators.render_samples("_toy", range(4), "train", "c")
    assert np.array_equal(a["objects/pos"], b["objects/pos"])
    assert not np.array_equal(a["objects/pos"], c["objects/pos"])


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete", "manifest"])
def test_tampered_split_is_refused(tmp_path, damage):
    folder = generators.generate_split("_toy", "test", profile="smoke", root=tmp_path)
    target = folder / "masks.npy"
    if damage == "flip":
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 1
        target.write_bytes(bytes(raw))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:-5])
    elif damage == "delete":
        target.unlink()
    else:
        (folder / "manifest.json").write_text("{not json")
    generators.core._VERIFIED.clear()
    with pytest.raises(generators.DatasetError) as e:
        generators.load("_toy", "test", profile="smoke", root=tmp_path)
    msg = str(e.value)
    assert "masks.npy" in msg or "manifest.json" in msg
    if damage != "manifest":
        assert "python -m benchmark generate _toy" in msg
    # generate_split repairs it
    generators.generate_split("_toy", "test", profile="smoke", root=tmp_path)
    assert len(generators.load("_toy", "test", profile="smoke", root=tmp_path)) == 7


def test_interrupted_generation_leaves_nothing_visible(tmp_path, monkeypatch):
    calls = {"n": 0}

    def boom(cfg, seeds):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt("simulated interruption")
        return _toy_render(cfg, seeds)

    monkeypatch.setitem(generators.core._REGISTRY, "_toy", TOY.__class__(**{**TOY.__dict__, "render": boom}))
    with pytest.raises(KeyboardInterrupt):
        generators.generate_split("_toy", "train", profile="smoke", root=tmp_path)
    parent = generators.split_dir("_toy", "train", profile="smoke", root=tmp_path).parent
    assert not (parent / "train").exists()
    assert list(parent.iterdir()) == []  # the temporary folder is gone too
    with pytest.raises(generators.DatasetError, match="not generated"):
        generators.load("_toy", "train", profile="smoke", root=tmp_path)


def test_unknown_names_list_valid_ones(tmp_path):
    with pytest.raises(generators.DatasetError, match="valid datasets"):
        generators.load("nope", "test", root=tmp_path)
    with pytest.raises(generators.DatasetError, match=r"valid variants: \['a', 'b', 'c'\]"):
        generators.load("_toy", "test", variant="zz", root=tmp_path)
    with pytest.raises(generators.DatasetError, match="valid profiles"):
        generators.load("_toy", "test", profile="huge", root=tmp_path)
    with pytest.raises(generators.DatasetError, match="valid splits"):
        generators.load("_toy", "validation", root=tmp_path)


def test_device_split_batches(tmp_path):
    torch = pytest.importorskip("torch")
    generators.generate_split("_toy", "train", profile="smoke", root=tmp_path)
    ds = generators.load("_toy", "train", profile="smoke", root=tmp_path)
    dev = ds.to("cpu")
    assert len(dev) == 10 and dev.video.dtype == torch.uint8
    b = dev.sample(4, generator=torch.Generator().manual_seed(0))
    assert b["video"].shape == (4, 2, 8, 8, 3)
    seen = torch.cat([bb["index"] for bb in dev.batches(3, shuffle=True, seed=1)])
    assert sorted(seen.tolist()) == list(range(10))
    b = ds.batch([7, 2, 7])  # rows come back in the order asked for, repeats included
    assert b["index"].tolist() == [7, 2, 7]
    assert np.array_equal(b["video"].numpy(), np.asarray(ds.video)[[7, 2, 7]])
    loader = ds.torch_loader(batch_size=4)
    first = next(iter(loader))
    assert first["video"].shape == (4, 2, 8, 8, 3)


def test_env_root(tmp_path, monkeypatch):
    monkeypatch.setenv("OCBENCH_DATA", str(tmp_path / "envroot"))
    assert generators.data_root() == tmp_path / "envroot"
    assert generators.data_root(tmp_path / "x") == tmp_path / "x"


def test_stale_config_is_detected_and_regenerated(tmp_path, monkeypatch):
    generators.generate_split("_toy", "test", profile="smoke", root=tmp_path)
    changed = TOY.__class__(**{**TOY.__dict__, "base_config": {"frames": 2, "size": 8, "extra": 1}})
    monkeypatch.setitem(generators.core._REGISTRY, "_toy", changed)
    with pytest.raises(generators.DatasetError, match=r"different config \(keys \['extra'\]\)"):
        generators.load("_toy", "test", profile="smoke", root=tmp_path)
    assert generators.status("_toy", profile="smoke", root=tmp_path)["test"].startswith("corrupt")
    generators.generate_split("_toy", "test", profile="smoke", root=tmp_path)  # remakes it
    assert generators.load("_toy", "test", profile="smoke", root=tmp_path).config["extra"] == 1


def test_profile_check_refuses_before_writing(tmp_path, monkeypatch):
    def refuse(profile, cfg):
        if profile == "paper":
            raise generators.DatasetError("paper needs more source data")

    monkeypatch.setitem(generators.core._REGISTRY, "_toy", TOY.__class__(**{**TOY.__dict__, "check": refuse}))
    with pytest.raises(generators.DatasetError, match="more source data"):
        generators.generate_split("_toy", "test", profile="paper", root=tmp_path)
    assert not tmp_path.exists() or not any(tmp_path.rglob("*.npy"))
    generators.generate_split("_toy", "test", profile="smoke", root=tmp_path)
