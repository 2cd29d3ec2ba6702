"""The model details that must match their sources (issue 10, "Models"): IODINE as in the official
``deepmind-research/iodine`` code, Slot Attention's decoder as in EfficientMORL's configs, MONet as in
Burgess et al. 2019, and IODINE's likelihood kept in float32 under bf16 autocast. CPU, seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import baselines.iodine as iodine_mod
from baselines.base import DatasetInfo, FitContext, get_method
from tests.test_baselines_learned import tiny, toy_split

SHAPES = {"tetrominoes": (1, 35, 35, 3), "multi_dsprites": (1, 64, 64, 3)}


def _paper_model(name: str, dataset: str, **over):
    cls = get_method(name)
    cfg = cls.Config.for_dataset(dataset, "colored_on_grayscale" if dataset == "multi_dsprites" else "")
    for k, v in over.items():
        setattr(cfg, k, v)
    return cls(cfg, DatasetInfo(dataset, "", "image", SHAPES[dataset], 4)).build_model(), cfg


def _toy_batch(n: int = 2) -> torch.Tensor:
    return torch.from_numpy(toy_split(n).video[:, 0]).permute(0, 3, 1, 2).float() / 255


# -- IODINE ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["tetrominoes", "multi_dsprites"])
def test_iodine_six_losses_weighted_linspace(dataset):
    """num_iters = 5 refinements plus a final decode: 6 losses, weights linspace(0, 1, 6) (io L466-468)."""
    torch.manual_seed(0)
    model, cfg = _paper_model("iodine", dataset)
    assert cfg.refinement_steps == 5
    h, w = SHAPES[dataset][1:3]
    total, _, _ = model.run(torch.rand(1, 3, h, w), sample=False)
    assert len(model.iteration_losses) == 6
    assert model.loss_weights == pytest.approx(np.linspace(0.0, 1.0, 6).tolist())
    expected = sum(wt * lt for wt, lt in zip(model.loss_weights, model.iteration_losses))
    torch.testing.assert_close(total.detach(), expected)


def test_iodine_coordinate_channels():
    """Pixel decoder: 2 linear channels in [-1, 1]; refinement: the 3-frequency cos basis, 8 channels."""
    model, cfg = _paper_model("iodine", "tetrominoes")
    h, w = 35, 35
    dec = model.decoder
    assert dec.grid.shape == (2, h, w)
    torch.testing.assert_close(dec.grid[0, :, 0], torch.linspace(-1, 1, h))  # rows
    torch.testing.assert_close(dec.grid[1, 0, :], torch.linspace(-1, 1, w))  # columns
    assert dec.net[0].in_channels == cfg.latent + 1 + 2  # z, the constant 5.0 channel, 2 coordinates
    assert model.coords.shape == (8, h, w)
    u, v = np.linspace(0, np.pi, w), np.linspace(0, np.pi, h)
    want = [np.cos(fy * v)[:, None] * np.cos(fx * u)[None, :] for fx in range(3) for fy in range(3)][1:]
    np.testing.assert_allclose(model.coords.numpy(), np.stack(want), atol=1e-5)
    assert model.refine_conv[0].in_channels == 3 * 3 + 7 + 8


def test_iodine_latent_scale_prior_and_init():
    """std = sqrt(softplus(raw)) ("var"), prior N(0, softplus(0)) (io L146): lambda = 0 gives KL = 0."""
    torch.manual_seed(0)
    model = tiny("iodine").build_model()
    x = _toy_batch()
    lam = torch.zeros(2, 3, 2 * model.z)
    s = model._score(x, lam, sample=False)
    torch.testing.assert_close(s["loss"], -s["log_px"].flatten(1).sum(1).mean())  # the KL term is 0
    lam[..., model.z :] = 1.0  # raw scale 1: std sqrt(softplus(1)), KL against N(0, ln 2) per dim
    kl = model._score(x, lam, sample=False)["loss"] - s["loss"]
    var = math.log1p(math.e)
    per_dim = 0.5 * (math.log(math.log(2.0) / var) + var / math.log(2.0) - 1.0)
    assert float(kl.detach()) == pytest.approx(per_dim * model.z * 3, rel=1e-4)
    z = model.z
    assert float(model.lambda0.detach().abs().max()) <= math.sqrt(6 / (4 * z))  # glorot-uniform over [2z]


def test_iodine_gradient_inputs_match_the_code():
    """dmask is the gradient w.r.t. the mask logits; the posterior is not mask-weighted; capacity is 0.5."""
    torch.manual_seed(0)
    model = tiny("iodine").build_model()
    x = _toy_batch()
    c = 3
    lam = model.lambda0.detach().view(1, 1, -1).expand(2, 3, -1) + 0.3 * torch.randn(2, 3, 2 * model.z)
    lam = lam.clone().requires_grad_(True)
    s = model._score(x, lam, sample=False)
    spatial, flat = model._gradient_inputs(x, lam, s)
    assert spatial.shape[1] == model.refine_conv[0].in_channels and flat.shape[1] == 4 * model.z + 1
    g_logits, g_means = torch.autograd.grad(s["loss"], [s["logits"], s["means"]], retain_graph=True)
    ln = lambda t: F.layer_norm(t, t.shape[1:], eps=1e-5)  # noqa: E731 (the LN scale/offset start at 1/0)
    torch.testing.assert_close(spatial[:, 3 * c + 2], ln(g_logits.reshape(6, 1, 12, 12))[:, 0])  # dmask
    torch.testing.assert_close(spatial[:, 2 * c : 3 * c], ln(g_means.reshape(6, c, 12, 12)))  # dcomponents
    post = spatial[:, 3 * c + 3].reshape(2, 3, 12, 12)
    p = s["log_pk"].double().exp()
    torch.testing.assert_close(post.double(), p / (p.sum(1, keepdim=True) + 1e-6), atol=1e-5, rtol=1e-4)  # io L497-500
    assert not torch.allclose(post, (s["log_m"] + s["log_pk"]).softmax(1))
    assert torch.all(spatial[:, 3 * c + 6] == 0.5) and torch.all(flat[:, 2 * model.z] == 0.5)  # capacity
    torch.testing.assert_close(spatial[:, 3 * c], s["logits"].reshape(6, 12, 12))  # "mask" = logits
    # stop-gradient on the gradient inputs only (io L52-53): dmask has no path back to the decoder output,
    # the posterior keeps one
    (dm_path,) = torch.autograd.grad(spatial[:, 3 * c + 2].sum(), [s["logits"]], retain_graph=True, allow_unused=True)
    (post_path,) = torch.autograd.grad(post.sum() + (post**2).sum(), [s["means"]], retain_graph=True)
    assert (dm_path is None or not dm_path.any()) and post_path.abs().sum() > 0


def test_iodine_likelihood_and_gradient_inputs_are_float32_under_bf16_autocast(monkeypatch):
    torch.manual_seed(0)
    model = tiny("iodine").build_model()
    seen: dict[str, list] = {
        "likelihood": [],
        "norm_in": [],
        "norm_out": [],
        "decoder": [],
        "refine_in": [],
        "refine_out": [],
    }
    real = iodine_mod.logistic_log_prob

    def spy(x, mean, scale):
        out = real(x, mean, scale)
        seen["likelihood"] += [x.dtype, mean.dtype, out.dtype]
        return out

    monkeypatch.setattr(iodine_mod, "logistic_log_prob", spy)

    def on_norm(mod, inputs, out):  # a forward hook must return None (a value would replace the output)
        seen["norm_in"].append(inputs[0].dtype)
        seen["norm_out"].append(out.dtype)

    hooks = [m.register_forward_hook(on_norm) for m in model.norms.values()]
    hooks.append(model.decoder.register_forward_hook(lambda mod, i, o: seen["decoder"].append(o.dtype)))
    hooks.append(model.refine_conv.register_forward_pre_hook(lambda mod, i: seen["refine_in"].append(i[0].dtype)))
    hooks.append(model.refine_conv[0].register_forward_hook(lambda mod, i, o: seen["refine_out"].append(o.dtype)))
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(_toy_batch())
    finally:
        for hk in hooks:
            hk.remove()
    assert loss.dtype == torch.float32
    for key in ("likelihood", "norm_in", "norm_out", "decoder", "refine_in"):
        assert seen[key] and set(seen[key]) == {torch.float32}, (key, seen[key])
    assert set(seen["refine_out"]) == {torch.bfloat16}  # autocast still applies to the refinement network


# -- Slot Attention ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset,slot,grid", [("tetrominoes", 32, 41), ("multi_dsprites", 64, 70)])
def test_slot_attention_decoder_is_emorl_small(dataset, slot, grid):
    """EfficientMORL lib/model.py ImageDecoder "small": grid H+6, 3 x conv5 32 (padding 1) + conv3 (padding 1)."""
    model, _ = _paper_model("slot_attention", dataset)
    convs = [m for m in model.decoder.net if isinstance(m, nn.Conv2d)]
    got = [(m.in_channels, m.out_channels, m.kernel_size, m.padding) for m in convs]
    assert got == [
        (slot, 32, (5, 5), (1, 1)),
        (32, 32, (5, 5), (1, 1)),
        (32, 32, (5, 5), (1, 1)),
        (32, 4, (3, 3), (1, 1)),
    ]
    assert sum(isinstance(m, nn.ReLU) for m in model.decoder.net) == 3
    assert model.decoder.pos.grid.shape[:2] == (grid, grid)
    h = SHAPES[dataset][1]
    assert model.decoder(torch.randn(2, slot)).shape == (2, 4, h, h)


# -- MONet -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", ["multi_dsprites", "tetrominoes"])
def test_monet_follows_burgess_et_al(dataset):
    model, cfg = _paper_model("monet", dataset)
    assert (cfg.optimizer, cfg.lr, cfg.batch_size, cfg.steps) == ("rmsprop", 1e-4, 64, 1_000_000)
    assert (cfg.decay_rate, cfg.warmup_steps) == (1.0, 0)  # no schedule
    assert (cfg.sigma_bg, cfg.sigma_fg, cfg.beta, cfg.gamma, cfg.latent) == (0.09, 0.11, 0.5, 0.5, 16)
    sig = model.sigma.flatten()
    assert float(sig[0]) == pytest.approx(0.09) and torch.allclose(sig[1:], torch.tensor(0.11))


def test_monet_trains_with_rmsprop(monkeypatch):
    made = []

    class Recording(torch.optim.RMSprop):
        def __init__(self, params, **kw):
            made.append(kw)
            super().__init__(params, **kw)

    monkeypatch.setattr(torch.optim, "RMSprop", Recording)
    m = tiny("monet", steps=1, optimizer="rmsprop", lr=1e-4)
    m.fit(toy_split(8), None, FitContext(device="cpu", progress=False))
    assert made and made[0]["lr"] == 1e-4


def test_iodine_predict_samples_so_slots_differ_and_is_reproducible():
    """The slots share lambda^(1): decoding posterior means would keep all K slots identical (uniform masks).
    ``decompose`` samples z as the code's evaluation does, from a fixed-seed generator."""
    torch.manual_seed(0)
    model = tiny("iodine").build_model()
    x = _toy_batch()
    recon, m = model.decompose(x)
    assert float(m.std(dim=1).max()) > 1e-3  # the slots differ
    recon2, m2 = model.decompose(x)
    torch.testing.assert_close(m, m2)
    torch.testing.assert_close(recon, recon2)
    _, means, log_m = model.run(x, sample=False)
    torch.testing.assert_close(log_m.exp(), torch.full_like(log_m, 1 / 3))  # why: no sample, no symmetry breaking
