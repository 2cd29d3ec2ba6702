"""The learned image baselines (Slot Attention, MONet, IODINE) at tiny sizes on the CPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from baselines.base import DatasetInfo, FitContext, get_method, methods

H = W = 12
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)


class ToySplit:
    """The attributes of a ``generators.SplitDataset`` that the trainer reads."""

    def __init__(self, video: np.ndarray, masks: np.ndarray):
        self.video, self.masks = video, masks

    @property
    def shape(self):
        return tuple(self.video.shape[1:])

    def __len__(self) -> int:
        return len(self.video)


def toy_split(n: int, seed: int = 0, t: int = 1, channels: int = 3, size: int = H) -> ToySplit:
    """Two non-overlapping coloured 4x4 squares on black (a Tetrominoes-like toy), masks 1..2."""
    rng = np.random.default_rng(seed)
    video = np.zeros((n, t, size, size, channels), np.uint8)
    masks = np.zeros((n, t, size, size), np.int64)
    half = size // 2
    for i in range(n):
        for f in range(t):
            for k, (r0, c0) in enumerate([(0, 0), (half, half)] if rng.random() < 0.5 else [(0, half), (half, 0)]):
                y, x = r0 + rng.integers(0, half - 3), c0 + rng.integers(0, half - 3)
                col = COLOURS[rng.integers(len(COLOURS))][:channels] if channels == 3 else 255
                video[i, f, y : y + 4, x : x + 4] = col
                masks[i, f, y : y + 4, x : x + 4] = k + 1
    return ToySplit(video, masks)


TINY = {
    "slot_attention": dict(
        num_slots=3,
        slot_size=16,
        encoder_channels=16,
        decoder_channels=16,
        decoder_layers=2,
        mlp_hidden=32,
        iterations=2,
        warmup_steps=3,
    ),
    "monet": dict(
        num_slots=3, latent=4, unet_blocks=3, unet_channels=8, vae_channels=8, vae_mlp=32, decoder_channels=8
    ),
    "iodine": dict(
        num_slots=3,
        latent=4,
        refinement_steps=2,
        decoder_channels=8,
        decoder_layers=2,
        refine_channels=8,
        refine_layers=2,
        refine_mlp=16,
        lstm=8,
    ),
}
LEARNED = sorted(TINY)


def tiny(name: str, channels: int = 3, **over):
    cls = get_method(name)
    info = DatasetInfo("toy", "", "image", (1, H, W, channels), 2)
    cfg = dataclasses.replace(cls.Config(), **{**TINY[name], "batch_size": 8, "steps": 20, **over})
    return cls(cfg, info)


def test_methods_registered_with_kinds():
    reg = methods()
    for name in LEARNED:
        assert name in reg
        assert reg[name].kinds == frozenset({"image", "colour", "binary"})
        assert reg[name].frame_by_frame  # image methods run on videos frame by frame


def test_paper_configs_per_dataset():
    sa = get_method("slot_attention").Config
    assert (sa.for_dataset("tetrominoes", "").num_slots, sa.for_dataset("tetrominoes", "").slot_size) == (4, 32)
    md = sa.for_dataset("multi_dsprites", "colored_on_grayscale")
    assert (md.num_slots, md.slot_size, md.lr, md.warmup_steps, md.batch_size, md.steps) == (
        6,
        64,
        4e-4,
        10_000,
        64,
        500_000,
    )
    io = get_method("iodine").Config
    t, d = io.for_dataset("tetrominoes", ""), io.for_dataset("multi_dsprites", "colored_on_grayscale")
    assert (t.num_slots, t.latent, t.refinement_steps, t.lstm) == (4, 32, 5, 0)  # no LSTM for Tetrominoes
    assert (d.num_slots, d.latent, d.lstm) == (6, 16, 128)
    mo = get_method("monet").Config.for_dataset("tetrominoes", "")
    assert (mo.num_slots, mo.unet_blocks, mo.sigma_bg, mo.sigma_fg, mo.beta, mo.gamma) == (4, 4, 0.09, 0.11, 0.5, 0.5)


@pytest.mark.parametrize("name", LEARNED)
def test_forward_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    m = tiny(name)
    model = m.build_model()
    x = torch.from_numpy(toy_split(4).video[:, 0]).permute(0, 3, 1, 2).float() / 255
    loss = model(x)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing}"


@pytest.mark.parametrize("name", LEARNED)
@pytest.mark.parametrize("channels", [3, 1])
def test_fit_then_predict_shapes(name, channels):
    m = tiny(name, channels=channels, steps=2)
    ctx = FitContext(device="cpu", progress=False)
    m.fit(toy_split(16, channels=channels), None, ctx)
    assert ctx.info["steps"] == 2 and ctx.info["status"] == "ok"
    video = torch.from_numpy(toy_split(2, seed=3, t=3, channels=channels).video)  # any T is flattened
    p = m.predict({"video": video})
    assert p.masks.shape == (2, 3, H, W) and p.masks.dtype == torch.int64
    assert int(p.masks.min()) >= 1 and int(p.masks.max()) <= 3  # ids 1..K
    assert p.recon.shape == (2, 3, H, W, channels) and p.recon.dtype == torch.float32
    assert float(p.recon.min()) >= 0 and float(p.recon.max()) <= 1
    assert p.soft_masks.shape == (2, 3, 3, H, W)
    torch.testing.assert_close(p.soft_masks.sum(2), torch.ones(2, 3, H, W), atol=1e-4, rtol=0)
    assert torch.equal(p.masks, p.soft_masks.argmax(2) + 1)


def _losses(name: str, steps: int, **over) -> list[float]:
    m = tiny(name, steps=steps, val_every=1, **over)
    ctx = FitContext(device="cpu", progress=False, seed=0)
    m.fit(toy_split(64), None, ctx)
    return [p["loss"] for p in ctx.info["curve"]]


@pytest.mark.parametrize("name,steps,lr", [("slot_attention", 40, 2e-3), ("monet", 30, 1e-3), ("iodine", 30, 1e-3)])
def test_loss_decreases_on_toy_scenes(name, steps, lr):
    losses = _losses(name, steps, lr=lr)
    assert len(losses) == steps
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 0.2 * abs(first), (first, last)


def test_predict_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="before fit"):
        tiny("slot_attention").predict({"video": torch.zeros(1, 1, H, W, 3, dtype=torch.uint8)})


def test_bad_video_is_rejected():
    m = tiny("slot_attention", steps=1)
    m.fit(toy_split(8), None, FitContext(device="cpu", progress=False))
    with pytest.raises(ValueError, match=r"batch\['video'\]"):
        m.predict({"video": torch.zeros(1, H, W, 3, dtype=torch.uint8)})


def test_slot_attention_qkv_have_no_bias():
    model = tiny("slot_attention").build_model()
    sa = model.slot_attention
    assert sa.q.bias is None and sa.kproj.bias is None and sa.v.bias is None


def test_slot_attention_softmax_is_over_slots():
    from baselines.slot_attention import SlotAttentionModule

    torch.manual_seed(0)
    mod = SlotAttentionModule(num_slots=4, dim=8, in_dim=8, iterations=1)
    _, attn = mod(torch.randn(2, 10, 8))
    torch.testing.assert_close(attn.sum(1), torch.ones(2, 10) + 4 * mod.eps)


@pytest.mark.parametrize("channels,expected", [(3, 24), (1, 18)])
def test_iodine_refinement_inputs(channels, expected):
    # the official code's default inputs (iodine/modules/iodine.py DEFAULT_INPUTS): image, components,
    # dcomponents (C each), mask logits, softmax mask, dmask, posterior, log p(x), counterfactual, capacity
    # (1 each) and the 3-frequency cos basis (8); the paper's App. C table (17) has 2 linear coordinates and no
    # capacity channel. Tetrominoes has no LSTM.
    cls = get_method("iodine")
    info = DatasetInfo("tetrominoes", "", "image", (1, 35, 35, channels), 3)
    model = cls(cls.Config.for_dataset("tetrominoes", ""), info).build_model()
    assert model.refine_conv[0].in_channels == expected
    assert model.lstm is None
    assert model.refine_out.in_features == 128 + 4 * 32 + 1  # [MLP 128, lambda, grad lambda, flat capacity], z = 32


def test_iodine_loss_weights_iterations_linearly():
    torch.manual_seed(0)
    model = tiny("iodine", refinement_steps=3).build_model()  # 3 refinements, 4 decodes
    x = torch.from_numpy(toy_split(2).video[:, 0]).permute(0, 3, 1, 2).float() / 255
    total, _, _ = model.run(x, sample=False)
    ls = model.iteration_losses
    assert len(ls) == 4 and model.loss_weights == pytest.approx([0, 1 / 3, 2 / 3, 1])
    torch.testing.assert_close(total.detach(), ls[1] / 3 + 2 * ls[2] / 3 + ls[3])
    assert not torch.allclose(ls[0], ls[3])  # the refinement changed the posterior
    model1 = tiny("iodine", refinement_steps=1).build_model()
    model1.load_state_dict(model.state_dict())
    model1.run(x, sample=False)
    torch.testing.assert_close(model1.iteration_losses[0], ls[0])  # L_0 does not depend on the number of steps
    torch.testing.assert_close(model1.iteration_losses[1], ls[1])
