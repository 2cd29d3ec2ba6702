"""IODINE (Greff et al. 2019): iterative amortised inference in a K-slot spatial mixture VAE.

Seed 001 §2 and App. C, with the official code's choices recorded in the spec (baselines.md):

- posterior lambda_k = (loc, raw scale) of q(z_k) = N(loc, softplus(raw)); the initial lambda^(1) is a
  trained parameter shared by the slots (symmetry is broken by sampling);
- spatial broadcast decoder (ELU, 'cos' coordinates with 3 frequencies) -> C colour means (sigmoid;
  ocbench choice, keeps them in [0, 1]) and one mask logit; masks = softmax over slots;
- pixel likelihood: a mixture of logistics with scale 0.03 (official code; ``likelihood="gaussian"``
  gives the paper text's sigma = 0.1);
- refinement network f_phi: conv5x5 stride 2 stack (ELU) on the image-sized inputs of App. C, global
  average pool, MLP (ELU), concatenation with [lambda, LN(SG(grad_lambda L))], an LSTM (none for
  Tetrominoes), and a linear layer giving the additive update of lambda;
- the 17 image-sized inputs (for C=3): image x (C), means mu_k (C), mask m_k, mask logits, mask
  posterior p(m_k|x,mu), LN+SG gradient of the means (C), LN+SG gradient of the mask, LN+SG pixelwise
  likelihood p(x|z), LN+SG leave-one-out likelihood p(x|z_{i!=k}), 2 coordinate channels. Gradients
  are taken with ``create_graph=False`` (no double derivatives, §2.3), likelihoods in log space;
- loss sum_t (t/T) L_t over the T iterations (``iter_loss_weight="linspace"``), L_t = negative ELBO
  (per image, mean over the batch). T iterations give T losses and T-1 refinements.
"""
from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import register_method
from .nn import BroadcastDecoder, coord_channels, gaussian_log_prob, logistic_log_prob
from .trainer import LearnedImageMethod, TrainSettings


@dataclasses.dataclass
class IODINEConfig(TrainSettings):
    """Defaults = the Multi-dSprites model (spec table); ``for_dataset`` gives the others.

    Optimiser (official code): Adam lr 3e-4, beta1 0.95, global-norm clip 5, lr x0.1 per 1M steps
    (exponential), 1M updates. The paper batch (256 Tetrominoes, 128 Multi-dSprites) is kept on one
    device, so the lr rule 3e-4 * sqrt(B / paper batch) gives 3e-4.
    """

    num_slots: int | None = None  # None: max objects + 1 (background)
    latent: int = 16
    iterations: int = 5
    decoder_channels: int = 32
    decoder_layers: int = 4
    decoder_kernel: int = 5
    coord_freqs: int = 3
    refine_channels: int = 32
    refine_layers: int = 3
    refine_kernel: int = 5
    refine_mlp: int = 128
    lstm: int = 128  # 0: no LSTM (Tetrominoes)
    likelihood: str = "logistic"  # logistic (code) | gaussian (paper text)
    pixel_scale: float = 0.03  # logistic scale; the gaussian sigma is 0.1
    steps: int = 1_000_000
    batch_size: int = 128
    lr: float = 3e-4
    betas: tuple[float, float] = (0.95, 0.999)
    clip_norm: float | None = 5.0
    decay_rate: float = 0.1
    decay_steps: int = 1_000_000
    compile: bool | None = False  # gradient inputs (autograd.grad in forward) break torch.compile graphs
    predict_batch_size: int = 128

    @classmethod
    def for_dataset(cls, dataset: str, variant: str | None = None) -> "IODINEConfig":
        """Tetrominoes: K=4, z=32, 5 iterations, no LSTM, batch 256. Multi-dSprites: K=6, z=16, LSTM 128,
        batch 128. Others (not in the papers): the Multi-dSprites model with K = max objects + 1
        (Bouncing Balls 5, as PROVIDE; Scattered MNIST/Shapes 7 or 13) and batch 32."""
        if dataset == "tetrominoes":
            return cls(num_slots=4, latent=32, lstm=0, batch_size=256)
        if dataset == "multi_dsprites":
            return cls(num_slots=6, latent=16, batch_size=128)
        if dataset == "bouncing_balls":
            return cls(num_slots=5, batch_size=32)
        if dataset in ("scattered_mnist", "scattered_shapes"):
            return cls(num_slots=13 if variant == "max12" else 7, batch_size=32)
        return cls(batch_size=32)


def _layer_norm(x: torch.Tensor) -> torch.Tensor:
    """LayerNorm over all but the first dim, no affine parameters (App. C 'LN')."""
    return F.layer_norm(x, x.shape[1:])


class IODINEModel(nn.Module):
    def __init__(self, cfg: IODINEConfig, num_slots: int, resolution: tuple[int, int], channels: int):
        super().__init__()
        if cfg.likelihood not in ("logistic", "gaussian"):
            raise ValueError(f"likelihood must be 'logistic' or 'gaussian', got {cfg.likelihood!r}")
        if cfg.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {cfg.iterations}")
        self.cfg, self.k, self.c, self.z = cfg, num_slots, channels, cfg.latent
        h, w = resolution
        z = cfg.latent
        # lambda^(1): loc 0 and raw scale softplus^-1(1), i.e. the prior N(0, 1) (App. C), then trained
        self.lambda0 = nn.Parameter(torch.cat([torch.zeros(z), torch.full((z,), math.log(math.e - 1))]))
        self.decoder = BroadcastDecoder(z, channels + 1, resolution, [cfg.decoder_channels] * cfg.decoder_layers,
                                        kernel=cfg.decoder_kernel, out_kernel=cfg.decoder_kernel, act=nn.ELU,
                                        coords="cos", freqs=cfg.coord_freqs)
        in_ch = 3 * channels + 8  # = 17 for RGB (App. C table)
        r = cfg.refine_channels
        layers: list[nn.Module] = []
        c = in_ch
        for _ in range(cfg.refine_layers):
            layers += [nn.Conv2d(c, r, cfg.refine_kernel, stride=2, padding=cfg.refine_kernel // 2), nn.ELU()]
            c = r
        self.refine_conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                         nn.Linear(r, cfg.refine_mlp), nn.ELU())
        cat = cfg.refine_mlp + 4 * z  # [features, lambda, LN(grad lambda)]
        self.lstm = nn.LSTMCell(cat, cfg.lstm) if cfg.lstm else None
        self.refine_out = nn.Linear(cfg.lstm or cat, 2 * z)
        self.register_buffer("coords", coord_channels(h, w, "linear"), persistent=False)

    def _pixel_log_prob(self, x: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        if self.cfg.likelihood == "logistic":
            return logistic_log_prob(x, means, self.cfg.pixel_scale)
        return gaussian_log_prob(x, means, self.cfg.pixel_scale)

    def run(self, x: torch.Tensor, sample: bool = True):
        """Unrolled inference. Returns (weighted loss, final means [B,K,C,H,W], final log masks [B,K,H,W]).

        ``self.iteration_losses`` keeps the detached L_t of the last call (for monitoring and tests).
        """
        b, c, h, w = x.shape
        k, zdim, iters = self.k, self.z, self.cfg.iterations
        x = x.float()
        lam = self.lambda0.view(1, 1, -1).expand(b, k, -1)
        state = None
        total = x.new_zeros(())
        means = log_m = None
        self.iteration_losses: list[torch.Tensor] = []
        for t in range(1, iters + 1):
            if not lam.requires_grad:  # inference without parameter grads still needs d/d lambda
                lam = lam.detach().requires_grad_(True)
            loc, raw = lam[..., :zdim], lam[..., zdim:]
            scale = F.softplus(raw) + 1e-4
            zs = loc + scale * torch.randn_like(loc) if sample else loc
            out = self.decoder(zs.reshape(b * k, zdim)).float().view(b, k, c + 1, h, w)
            means = torch.sigmoid(out[:, :, :c])
            logits = out[:, :, c]
            log_m = logits.log_softmax(dim=1)
            masks = log_m.exp()
            log_pk = self._pixel_log_prob(x.unsqueeze(1), means).sum(2)  # [B,K,H,W]
            joint = log_m + log_pk
            log_px = torch.logsumexp(joint, dim=1)  # [B,H,W]
            nll = -log_px.flatten(1).sum(1)
            kl = (0.5 * (loc ** 2 + scale ** 2 - 1.0) - torch.log(scale)).sum(-1).sum(-1)
            loss_t = (nll + kl).mean()
            total = total + (t / iters) * loss_t
            self.iteration_losses.append(loss_t.detach())
            if t == iters:
                break
            # gradient inputs: no graph through them (stop-gradient, no double derivatives)
            g_lam, g_means = torch.autograd.grad((nll + kl).sum(), [lam, means], retain_graph=True)
            with torch.no_grad():
                # d(-log sum_j m_j p_j)/d m_k = -p_k / p(x), in closed form (the loss reads log m, not m)
                g_masks = -(log_pk - log_px.unsqueeze(1)).exp()
                post = joint.softmax(dim=1)
                eye = torch.eye(k, dtype=torch.bool, device=x.device).view(1, k, k, 1, 1)
                others = joint.unsqueeze(1).expand(b, k, k, h, w).masked_fill(eye, float("-inf"))
                others_m = log_m.unsqueeze(1).expand(b, k, k, h, w).masked_fill(eye, float("-inf"))
                loo = torch.logsumexp(others, dim=2) - torch.logsumexp(others_m, dim=2)  # log p(x|z_{i!=k})
                sg = [_layer_norm(g_means.reshape(b * k, c, h, w)),
                      _layer_norm(g_masks.reshape(b * k, 1, h, w)),
                      _layer_norm(log_px.unsqueeze(1).expand(b, k, h, w).reshape(b * k, 1, h, w)),
                      _layer_norm(loo.reshape(b * k, 1, h, w))]
                g_lam_n = _layer_norm(g_lam.reshape(b * k, 2 * zdim))
            inputs = torch.cat([x.unsqueeze(1).expand(b, k, c, h, w).reshape(b * k, c, h, w),
                                means.reshape(b * k, c, h, w), masks.reshape(b * k, 1, h, w),
                                logits.reshape(b * k, 1, h, w), post.reshape(b * k, 1, h, w), *sg,
                                self.coords.expand(b * k, 2, h, w)], dim=1)
            feats = self.refine_conv(inputs)
            hid = torch.cat([feats, lam.reshape(b * k, 2 * zdim), g_lam_n], dim=1)
            if self.lstm is not None:
                state = self.lstm(hid, state)
                hid = state[0]
            lam = lam + self.refine_out(hid).float().view(b, k, 2 * zdim)
        return total, means, log_m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, sample=True)[0]

    def decompose(self, x: torch.Tensor):
        with torch.enable_grad():  # the refinement inputs need gradients, also at test time
            _, means, log_m = self.run(x, sample=False)
        m = log_m.exp().detach()
        return (m.unsqueeze(2) * means.detach()).sum(1).clamp(0, 1), m


@register_method("iodine", kinds={"image", "colour", "binary"}, config=IODINEConfig)
class IODINE(LearnedImageMethod):
    """IODINE; masks are the argmax of the last iteration's mixture weights, ids 1..K."""

    def build_model(self) -> nn.Module:
        _, h, w, c = self.info.shape
        return IODINEModel(self.config, self.num_slots(), (h, w), c)
