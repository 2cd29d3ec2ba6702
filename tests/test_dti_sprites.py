"""DTI-Sprites: composition and occlusion, identity transformations, greedy selection, reassignment, the
loss falling, predictions scored with classes through the harness, exact resume, and (slow) learning."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from baselines.base import DatasetInfo, FitContext
from baselines.dti_sprites import (
    DTISprites,
    DTISpritesConfig,
    DTISpritesModel,
    apply_transform,
    composite,
)
from baselines.trainer import CHECKPOINT_NAME
from benchmark.runner import RunOptions, Unit, ensure_data, run_unit
from generators.core import DatasetSpec, Variant, register_dataset

S = 12


def tiny_cfg(**kw) -> DTISpritesConfig:
    base = dict(
        n_sprites=3,
        n_layers=2,
        sprite_size=(6, 6),
        encoder_depth=8,
        head_hidden=16,
        steps=6,
        batch_size=4,
        check_cluster_interval=3,
        val_every=2,
        checkpoint_every=3,
    )
    base.update(kw)
    return DTISpritesConfig(**base)


def test_composition_order_and_occlusion_on_two_sprites():
    """Red square at the back (layer 0), half-transparent blue in front (layer 1), overlapping at one pixel."""
    rgb = torch.zeros(2, 1, 3, 1, 3)
    rgb[0, 0, 0] = 1.0  # red
    rgb[1, 0, 2] = 1.0  # blue
    alpha = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.5, 1.0]]).view(2, 1, 1, 1, 3)
    back_to_front = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])  # layer 1 occludes layer 0
    img, vis = composite(rgb, alpha, back_to_front)
    # pixel 0: red only; pixel 1: 0.5 blue over red -> (0.5, 0, 0.5); pixel 2: blue only
    assert torch.allclose(img[0, :, 0, :], torch.tensor([[1.0, 0.5, 0.0], [0, 0, 0], [0.0, 0.5, 1.0]]))
    assert torch.allclose(vis[:, 0, 0, 0], torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]))
    # the reversed occlusion: red occludes blue, so the overlap is pure red
    img2, _ = composite(rgb, alpha, back_to_front.transpose(1, 2))
    assert torch.allclose(img2[0, :, 0, 1], torch.tensor([1.0, 0.0, 0.0]))
    # Eq. (1) recursion gives the same image: c1 = a0 r0; c2 = a1 r1 + (1 - a1) c1
    c = alpha[0] * rgb[0]
    c = alpha[1] * rgb[1] + (1 - alpha[1]) * c
    assert torch.allclose(img, c[0])


@pytest.mark.parametrize("kind", ["colour", "position", "similarity", "projective"])
def test_each_transformation_is_the_identity_at_zero_parameters(kind):
    torch.manual_seed(0)
    x = torch.rand(2, 5, 9, 9)  # 3 colour channels + mask + noise canvas
    p = 6 if kind == "colour" else {"position": 3, "similarity": 4, "projective": 8}[kind]
    out = apply_transform(kind, x, torch.zeros(2, p), (9, 9), 3, base_scale=1.0)
    assert torch.allclose(out, x, atol=1e-5)
    # and not the identity elsewhere
    assert not torch.allclose(apply_transform(kind, x, torch.full((2, p), 0.3), (9, 9), 3), x, atol=1e-3)


def test_the_model_starts_at_the_identity_transformations():
    """The heads' last layers are zero: a fresh model puts every sprite, unmoved, on every layer."""
    cfg = tiny_cfg(sprite_size=None, position_base_scale=1.0, mask_noise=0.0, n_backgrounds=0)
    m = DTISpritesModel(cfg, 2, (S, S), 3).eval()
    cols, masks, bkg, occ = m.candidates(torch.rand(2, 3, S, S))
    assert torch.allclose(cols[1, 0, 1], torch.full((3, S, S), 0.9), atol=1e-5)
    assert torch.allclose(masks[0, 2, 0, 0], m.mask[2, 0].clamp(0, 1), atol=1e-5)
    assert torch.equal(occ[0], torch.tensor([[0.0, 0.0], [1.0, 0.0]])) and bkg.abs().sum() == 0
    assert masks[:, -1].abs().sum() == 0  # the empty sprite


def test_greedy_selection_picks_the_sprite_that_lowers_the_loss():
    m = DTISpritesModel(tiny_cfg(n_backgrounds=0, greedy_iters=2), 2, (4, 4), 1).eval()
    K = m.K  # 3 sprites + empty
    cols = torch.zeros(2, K, 1, 1, 4, 4)
    masks = torch.zeros(2, K, 1, 1, 4, 4)
    for k in range(3):  # sprite k: a full-image layer of grey k/3 + 0.2
        cols[:, k] = k / 3 + 0.2
        masks[:, k] = 1.0
    x = torch.full((1, 1, 4, 4), 2 / 3 + 0.2)  # sprite 2 exactly
    occ = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    sel = m.greedy_select(x, cols, masks, torch.zeros(1, 1, 4, 4), occ)
    # pass 1: the back layer takes sprite 2 (exact); the front layer then adds nothing, so λ makes it empty
    assert sel[:, 0].tolist() == [2, K - 1]
    # a black image: the empty sprite on both layers (error 0 and no penalty)
    sel = m.greedy_select(torch.zeros(1, 1, 4, 4), cols, masks, torch.zeros(1, 1, 4, 4), occ)
    assert sel.tolist() == [[K - 1], [K - 1]]
    m.frozen = True  # while sprites are frozen the empty sprite is not offered
    sel = m.greedy_select(torch.zeros(1, 1, 4, 4), cols, masks, torch.zeros(1, 1, 4, 4), occ)
    assert (sel == 0).all()  # the darkest sprite


def test_reassignment_restarts_unused_sprites_from_the_most_used():
    torch.manual_seed(0)
    cfg = tiny_cfg(n_sprites=4, add_empty_sprite=False, sprite_transforms=("similarity",))
    m = DTISpritesModel(cfg, 2, (S, S), 3)
    with torch.no_grad():
        m.proto.copy_(torch.rand_like(m.proto))
        m.mask.copy_(torch.rand_like(m.mask))
        for p in m.sprite_heads[0 * m.K + 1].parameters():
            p.add_(1.0)
    m.usage.copy_(torch.tensor([10.0, 300.0, 0.0, 290.0]))  # threshold 0.2 / 4 = 5 %: sprites 0 (1.7 %) and 2
    moved = m.reassign()
    assert moved == [0, 2] and m.usage.sum() == 0
    for i in (0, 2):
        assert torch.allclose(m.proto[i], m.proto[1], atol=1e-3) and torch.equal(m.mask[i], m.mask[1])
        for pa, pb in zip(m.sprite_heads[i].parameters(), m.sprite_heads[1].parameters()):
            assert torch.equal(pa, pb)
    assert not torch.allclose(m.proto[3], m.proto[1], atol=1e-3)  # sprite 3 is used: kept
    assert m.reassign() == []  # no counts: nothing to judge


class _Split:
    def __init__(self, video, masks):
        self.video, self.masks = video, masks
        self.shape = video.shape[1:]

    def __len__(self):
        return len(self.video)


def squares(n: int, seed: int = 0) -> _Split:
    """One or two 4x4 squares, red or green, on black."""
    rng = np.random.default_rng(seed)
    video = np.zeros((n, 1, S, S, 3), np.uint8)
    masks = np.zeros((n, 1, S, S), np.int64)
    for i in range(n):
        for k in range(rng.integers(1, 3)):
            y, x = rng.integers(0, S - 4, 2)
            video[i, 0, y : y + 4, x : x + 4, rng.integers(2)] = 255
            masks[i, 0, y : y + 4, x : x + 4] = k + 1
    return _Split(video, masks)


def _fit(cfg, split, ckdir=None, **ctx_kw):
    torch.manual_seed(0)
    info = DatasetInfo("toy", "default", "image", (1, S, S, 3), 2)
    method = DTISprites(cfg, info)
    ctx = FitContext(device="cpu", progress=False, seed=0, checkpoint_dir=ckdir, log=lambda s: None, **ctx_kw)
    method.fit(split, None, ctx)
    return method, ctx.info


def test_the_loss_falls_on_a_tiny_split():
    cfg = tiny_cfg(steps=40, lr=3e-3, batch_size=8, val_every=10, freeze_sprite_epochs=0)
    _, info = _fit(cfg, squares(16))
    losses = [p["loss"] for p in info["curve"]]
    assert losses[-1] < 0.7 * losses[0], losses
    assert info["assign_background_to_nearest_layer"] is False


def test_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """Interrupted after step 3 (frozen sprites until step 2, a reassignment check every 2 steps), then
    resumed: the same weights as one run of 6 steps."""
    from baselines.dti_sprites import DTITrainer

    cfg = tiny_cfg(steps=6, checkpoint_every=4, check_cluster_interval=2, freeze_sprite_epochs=1, steps_per_epoch=2)
    whole, info_a = _fit(cfg, squares(8), tmp_path / "a")
    with monkeypatch.context() as mp:
        mp.setattr(DTITrainer, "over_budget", lambda self: self.step >= 3)
        _, cut = _fit(cfg, squares(8), tmp_path / "b")
    assert cut["steps"] == 3 and cut["budget_cut"]
    again, info_b = _fit(cfg, squares(8), tmp_path / "b")
    assert info_b["resumed_from_step"] == 3 and info_b["steps"] == 6
    sa, sb = whole.model.state_dict(), again.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert (tmp_path / "a" / CHECKPOINT_NAME).exists()


def test_predict_gives_layer_ids_classes_and_recon():
    cfg = tiny_cfg(steps=2)
    method, _ = _fit(cfg, squares(4))
    video = torch.as_tensor(squares(3, seed=1).video).repeat(1, 2, 1, 1, 1)  # B=3, T=2
    pred = method.predict({"video": video})
    assert pred.masks.shape == (3, 2, S, S) and pred.recon.shape == (3, 2, S, S, 3)
    assert pred.classes.shape == (3, 2, 3) and (pred.classes[..., 0] == 0).all()
    assert int(pred.masks.max()) <= 2 and (pred.classes[..., 1:] >= 1).all()
    assert 0.0 <= float(pred.recon.min()) and float(pred.recon.max()) <= 1.0
    # the ARI-FG option moves every background pixel to a layer (no empty sprite chosen here at init?)
    method.config = dataclasses.replace(method.config, assign_background_to_nearest_layer=True)
    moved = method.predict({"video": video})
    sel_nonempty = (moved.classes[..., 1:] != method.model.K).any(-1)
    assert ((moved.masks > 0) | ~sel_nonempty[..., None, None]).all()
    assert torch.equal(moved.masks[pred.masks > 0], pred.masks[pred.masks > 0])


# a toy dataset with ground-truth classes, scored through the harness
def _render(cfg, seeds):
    n = len(seeds)
    video = np.zeros((n, 1, S, S, 3), np.uint8)
    masks = np.zeros((n, 1, S, S), np.uint8)
    cls = np.zeros((n, 2), np.int16)
    for i, s in enumerate(seeds):
        rng = np.random.default_rng(int(s))
        for k, (r, c) in enumerate(((1, 1), (7, 7))):
            cls[i, k] = rng.integers(0, 2)
            video[i, 0, r : r + 4, c : c + 4, cls[i, k]] = 255
            masks[i, 0, r : r + 4, c : c + 4] = k + 1
    return {"video": video, "masks": masks, "objects/n_objects": np.full(n, 2, np.int16), "objects/class": cls}


register_dataset(
    DatasetSpec(
        name="_dti_toy",
        version="1.0.0",
        kind="image",
        base_config={},
        variants={"default": Variant()},
        default_variant="default",
        sizes={p: {"train": 8, "val": 2, "test": 4} for p in ("smoke", "quick", "paper")},
        render=_render,
    )
)


def test_classes_reach_semantic_and_clustering_scores_through_run_unit(tmp_path):
    opts = RunOptions(
        profile="smoke",
        device="cpu",
        results=tmp_path / "res",
        data_root=str(tmp_path / "data"),
        work_dir=tmp_path / "runs",
        progress=False,
        overrides={"dti_sprites": {"n_sprites": 3, "sprite_size": [6, 6], "encoder_depth": 8}},
    )
    ensure_data("_dti_toy", "default", opts, log=lambda s: None)
    recs = run_unit(Unit("dti_sprites", "_dti_toy", "default", 0), opts, log=lambda s: None)
    assert recs and recs[0]["status"] == "ok", recs[0].get("error")
    m = recs[0]["metrics"]
    for key in ("fg_ari", "semantic_macc", "semantic_miou", "cluster_accuracy", "cluster_accuracy_m2o", "mse"):
        assert key in m and np.isfinite(float(m[key]["value"] if isinstance(m[key], dict) else m[key])), (
            key,
            m.get(key),
        )
