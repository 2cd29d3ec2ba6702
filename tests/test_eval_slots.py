"""Test-time slots (issue 10): a split declares the K it is scored with (Bouncing Balls ``test_678``: 9, as
PROVIDE), a method that can change K uses it, and every record stores the K it was scored with."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import generators
from baselines import Method, MethodError, Prediction, register_method
from baselines.base import FitContext
from benchmark import runner
from benchmark.runner import RunOptions, Unit, run_unit, use_eval_slots
from generators.core import DatasetSpec, Variant, register_dataset
from tests.test_baselines_learned import LEARNED, H, W, tiny, toy_split

# -- a toy with 6-8 objects, as test_678 ---------------------------------------------------------------------


def many_objects(n: int, seed: int = 0) -> torch.Tensor:
    """n frames [n,1,H,W,3] of 6-8 non-overlapping 2x2 squares of random colours on black."""
    rng = np.random.default_rng(seed)
    video = np.zeros((n, 1, H, W, 3), np.uint8)
    cells = [(r, c) for r in range(0, H - 1, 4) for c in range(0, W - 1, 4)]  # 9 cells of 4x4
    for i in range(n):
        for j in rng.choice(len(cells), int(rng.integers(6, 9)), replace=False):
            r, c = cells[j]
            video[i, 0, r + 1 : r + 3, c + 1 : c + 3] = rng.integers(64, 256, 3)
    return torch.from_numpy(video)


@pytest.fixture(scope="module")
def fitted():
    """Each learned method, tiny (trained K = 3), fitted for two steps."""
    out = {}
    for name in LEARNED:
        torch.manual_seed(0)
        m = tiny(name, steps=2)
        m.fit(toy_split(16), None, FitContext(device="cpu", progress=False))
        out[name] = m
    return out


@pytest.mark.parametrize("name", LEARNED)
def test_nine_slots_at_test_time(fitted, name):
    m = fitted[name]
    assert type(m).variable_slots and m.num_slots() == 3 and m.eval_slots() == 3
    weights = {k: v.clone() for k, v in m.model.state_dict().items()}
    video = many_objects(4)
    m.set_eval_slots(9)
    try:
        assert m.eval_slots() == 9 and m.num_slots() == 3  # the trained K is still what the config says
        p = m.predict({"video": video})
        assert p.soft_masks.shape == (4, 1, 9, H, W)
        torch.testing.assert_close(p.soft_masks.sum(2), torch.ones(4, 1, H, W), atol=1e-4, rtol=0)
        assert torch.equal(p.masks, p.soft_masks.argmax(2) + 1)
        assert 1 <= int(p.masks.min()) and int(p.masks.max()) <= 9
        assert p.recon.shape == (4, 1, H, W, 3)
        # no weight depends on K: changing it touched none
        for k, v in m.model.state_dict().items():
            assert torch.equal(v, weights[k]), k
    finally:
        m.set_eval_slots(None)
    assert m.eval_slots() == 3
    assert m.predict({"video": video}).soft_masks.shape == (4, 1, 3, H, W)


@pytest.mark.parametrize("name", LEARNED)
def test_bad_slot_counts_are_refused(name):
    m = tiny(name)
    for bad in (0, -1, 2.5, True, "9"):
        with pytest.raises(MethodError, match="positive integer"):
            m.set_eval_slots(bad)
    with pytest.raises(MethodError, match="before fit"):
        m.set_eval_slots(9)


def test_monet_runs_k_minus_one_attention_steps_plus_the_scope(fitted):
    """The attention is deterministic: at K = 9 its first two steps are the K = 3 model's, and the seven
    masks after them share out exactly the scope that K = 3 leaves as its last mask."""
    model = fitted["monet"].model
    x = many_objects(2).permute(0, 1, 4, 2, 3)[:, 0].float() / 255
    with torch.no_grad():
        m3 = model.attend(x).exp()
        model.set_num_slots(9)
        try:
            m9 = model.attend(x).exp()
            assert model.sigma.shape == (1, 9, 1, 1, 1)
            assert float(model.sigma[0, 0]) == pytest.approx(0.09) and float(model.sigma[0, 8]) == pytest.approx(0.11)
            assert torch.isfinite(model(x))  # the training loss runs with the rebuilt sigmas
        finally:
            model.set_num_slots(3)
    assert m3.shape[1] == 3 and m9.shape[1] == 9
    torch.testing.assert_close(m9[:, :2], m3[:, :2])
    torch.testing.assert_close(m9[:, 2:].sum(1), m3[:, 2], atol=1e-5, rtol=1e-4)


def test_iodine_slots_share_lambda1(fitted):
    """All K slots start from the one learned lambda^(1) and are refined by the same network: decoded at the
    posterior means (no sampling) they stay identical, so each of the 9 masks is exactly 1/9."""
    model = fitted["iodine"].model
    x = many_objects(2).permute(0, 1, 4, 2, 3)[:, 0].float() / 255
    model.set_num_slots(9)
    try:
        _, means, log_m = model.run(x, sample=False)
    finally:
        model.set_num_slots(3)
    assert means.shape[1] == 9 and log_m.shape[1] == 9
    torch.testing.assert_close(log_m.exp(), torch.full_like(log_m, 1 / 9))


def test_slot_attention_samples_k_slots(fitted):
    model = fitted["slot_attention"].model
    x = many_objects(2).permute(0, 1, 4, 2, 3)[:, 0].float() / 255
    seen = []
    hook = model.slot_attention.register_forward_hook(lambda mod, inp, out: seen.append(out[0].shape))
    model.set_num_slots(9)
    try:
        with torch.no_grad():
            assert torch.isfinite(model(x))
    finally:
        model.set_num_slots(3)
        hook.remove()
    assert seen == [torch.Size([2, 9, model.slot_attention.dim])]


# -- the harness ------------------------------------------------------------------------------------------


def _render(cfg, seeds):
    """``cfg["n"]`` coloured 2x2 squares in distinct cells of a 12x12 frame, still over ``frames`` frames."""
    n, T = len(seeds), cfg["frames"]
    video = np.zeros((n, T, H, W, 3), np.uint8)
    masks = np.zeros((n, T, H, W), np.uint8)
    cells = [(r, c) for r in range(0, H - 1, 4) for c in range(0, W - 1, 4)]
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        for k, j in enumerate(rng.choice(len(cells), cfg["n"], replace=False)):
            r, c = cells[j]
            video[i, :, r + 1 : r + 3, c + 1 : c + 3] = rng.integers(64, 256, 3)
            masks[i, :, r + 1 : r + 3, c + 1 : c + 3] = k + 1
    return {"video": video, "masks": masks, "objects/n_objects": np.full(n, cfg["n"], np.int16)}


SIZES = {"train": 8, "val": 2, "test_many": 2, "test": 2}  # the declared split first: the next one must reset K
TOY = register_dataset(
    DatasetSpec(
        name="_toyslots",
        version="1.0.0",
        kind="video",
        base_config={"frames": 2, "n": 2},
        variants={"default": Variant(splits={"test_many": {"n": 7}})},
        default_variant="default",
        sizes={p: dict(SIZES) for p in ("smoke", "quick", "paper")},
        render=_render,
        views={"many2": ("test_many", 1)},
        eval_slots={"test_many": 9},
    )
)


@dataclasses.dataclass
class SlotCfg:
    num_slots: int = 2
    variable: bool = True


class _SlotToy(Method):
    """Predicts ids = (pixel index mod K) + 1 with the K in use now; remembers every K it predicted with."""

    def fit(self, train, val, ctx):
        self.k = self.config.num_slots
        self.used: list[int] = []

    def num_slots(self):
        return self.config.num_slots

    def eval_slots(self):
        return self.k

    def apply_eval_slots(self, k):
        self.k = k

    def predict(self, batch):
        v = np.asarray(batch["video"])
        self.used.append(self.k)
        ids = np.arange(v[..., 0].size).reshape(v.shape[:-1]) % self.k + 1
        return Prediction(masks=ids)


@register_method("_toy_variable_slots", kinds={"video", "image", "colour", "binary"}, config=SlotCfg)
class ToyVariableSlots(_SlotToy):
    variable_slots = True


@register_method("_toy_fixed_slots", kinds={"video", "image", "colour", "binary"}, config=SlotCfg)
class ToyFixedSlots(_SlotToy):
    pass


def _opts(tmp_path, **kw) -> RunOptions:
    return RunOptions(
        profile="paper",
        device="cpu",
        results=tmp_path / "res",
        data_root=str(tmp_path / "data"),
        work_dir=tmp_path / "runs",
        progress=False,
        **kw,
    )


@pytest.fixture()
def toy_data(tmp_path):
    runner.ensure_data("_toyslots", "default", _opts(tmp_path), log=lambda s: None)
    return tmp_path


def test_spec_declares_test_time_slots():
    assert TOY.test_slots("test_many") == 9
    assert TOY.test_slots("many2") == 9  # a view is scored as the split it shows
    assert TOY.test_slots("test") is None and TOY.test_slots("train") is None
    assert "eval_slots" not in json.dumps(TOY.config("default", "test_many"))


@pytest.mark.parametrize(
    "eval_slots,match",
    [
        ({"train": 9}, "not one of its test splits"),
        ({"nope": 9}, "not one of its test splits"),
        ({"test": 0}, "positive integer"),
        ({"test": True}, "positive integer"),
        ({"test": 9.0}, "positive integer"),
    ],
)
def test_registration_checks_eval_slots(eval_slots, match):
    with pytest.raises(ValueError, match=match):
        register_dataset(dataclasses.replace(TOY, name="_toyslots_bad", eval_slots=eval_slots))


def test_declaring_slots_leaves_the_splits_valid(toy_data):
    """eval_slots is no part of a split's config or manifest: a spec without it loads the same split."""
    before = generators.load("_toyslots", "test_many", "default", "paper", str(toy_data / "data"))
    assert "eval_slots" not in json.dumps(before.manifest)
    try:
        register_dataset(dataclasses.replace(TOY, eval_slots={}))  # as if the split were made before it
        assert generators.status("_toyslots", "default", "paper", str(toy_data / "data"))["test_many"] == "verified"
        after = generators.load("_toyslots", "test_many", "default", "paper", str(toy_data / "data"))
        assert after.manifest_hash == before.manifest_hash
    finally:
        register_dataset(TOY)


def _records(tmp_path, method: str, **over) -> dict[str, dict]:
    opts = _opts(tmp_path, overrides={method: over} if over else {})
    recs = run_unit(Unit(method, "_toyslots", "default", 0), opts, log=lambda s: None)
    assert [r["status"] for r in recs] == ["ok"] * len(recs), [r.get("error") for r in recs]
    return {r["split"]: r for r in recs}


def test_run_unit_stores_the_split_k_and_the_trained_k(toy_data):
    recs = _records(toy_data, "_toy_variable_slots")
    assert sorted(recs) == ["many2", "test", "test_many"]
    assert (recs["test_many"]["num_slots"], recs["test_many"]["num_slots_source"]) == (9, "split")
    assert (recs["many2"]["num_slots"], recs["many2"]["num_slots_source"]) == (9, "split")
    # the split after the declared one is scored with the trained K again
    assert (recs["test"]["num_slots"], recs["test"]["num_slots_source"]) == (2, "trained")
    assert recs["test"]["split_eval_slots"] is None and recs["test_many"]["split_eval_slots"] == 9
    # the stored record says the same
    on_disk = json.loads((toy_data / "res" / "paper" / f"{recs['test_many']['run_id']}.json").read_text())
    assert (on_disk["num_slots"], on_disk["num_slots_source"]) == (9, "split")


def test_a_method_that_cannot_change_k_keeps_it_and_says_so(toy_data):
    recs = _records(toy_data, "_toy_fixed_slots")
    for split in ("test_many", "many2", "test"):
        assert (recs[split]["num_slots"], recs[split]["num_slots_source"]) == (2, "trained")
    assert recs["test_many"]["split_eval_slots"] == 9  # what the split asked for: why the row is capped
    m = ToyFixedSlots(SlotCfg(), None)
    m.fit(None, None, None)
    with pytest.raises(MethodError, match="cannot change its number of slots"):
        m.set_eval_slots(9)
    logs = []
    assert use_eval_slots(m, "_toyslots", "test_many", logs.append)["num_slots"] == 2
    assert "keeps 2" in logs[0]


def test_a_method_without_slots_records_none(toy_data):
    recs = _records(toy_data, "conncomp")
    assert all(r["num_slots"] is None and r["num_slots_source"] is None for r in recs.values())


def test_slot_attention_scores_the_declared_split_with_nine_slots(toy_data):
    """The real path: tiny Slot Attention trained with K = 3, scored on the 7-object split with 9 slots."""
    from tests.test_baselines_learned import TINY

    over = {**TINY["slot_attention"], "steps": 2, "batch_size": 4, "val_size": 2}
    recs = _records(toy_data, "slot_attention", **over)
    assert recs["test_many"]["fit_info"]["num_slots"] == 3
    assert (recs["test_many"]["num_slots"], recs["test_many"]["num_slots_source"]) == (9, "split")
    assert (recs["test"]["num_slots"], recs["test"]["num_slots_source"]) == (3, "trained")
    assert "fg_ari" in recs["test_many"]["metrics"]


def test_bouncing_balls_six_to_eight_balls_are_scored_with_nine_slots():
    spec = generators.get_spec("bouncing_balls")
    assert spec.test_slots("test_678") == 9 and spec.test_slots("test_678_colours8") == 9  # PROVIDE Table 2
    assert spec.test_slots("test") is None
    for v in spec.variants:
        assert "eval_slots" not in json.dumps(spec.config(v, "test_678"))
