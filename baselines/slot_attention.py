"""Slot Attention (Locatello et al. 2020), object discovery model.

Follows the official code (``google-research:slot_attention/model.py``, spec baselines.md):
CNN encoder (4 x conv5x5, 64 channels, ReLU) + soft position embedding, LayerNorm and a 2-layer
MLP; slot attention with a softmax over slots, q/k/v **without bias**, GRU + residual MLP, 3
iterations, slots initialised from a learned Gaussian; a spatial broadcast decoder per slot
returning RGB + alpha logit, composed by a softmax over slots; MSE loss on images in [-1, 1].

The Tetrominoes / Multi-dSprites configs broadcast at **full resolution** (EfficientMORL's
configs, spec): the decoder is 4 x conv5x5 (64, ReLU) + conv3x3 to C+1 at H x W, i.e. the official
CLEVR decoder without its stride-2 upsampling layers.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .base import register_method
from .nn import BroadcastDecoder, SoftPositionEmbed
from .trainer import LearnedImageMethod, TrainSettings


@dataclasses.dataclass
class SlotAttentionConfig(TrainSettings):
    """Paper/official hyper-parameters: Adam 4e-4, warm-up 10k, x0.5 per 100k, 500k steps at batch 64."""

    num_slots: int | None = None  # None: max objects + 1 (background)
    slot_size: int = 64
    iterations: int = 3
    mlp_hidden: int = 128
    encoder_channels: int = 64
    decoder_channels: int = 64
    decoder_layers: int = 4
    steps: int = 500_000
    batch_size: int = 64
    lr: float = 4e-4
    warmup_steps: int = 10_000
    decay_rate: float = 0.5
    decay_steps: int = 100_000
    eps: float = 1e-8

    @classmethod
    def for_dataset(cls, dataset: str, variant: str | None = None) -> "SlotAttentionConfig":
        """Per-dataset values. Tetrominoes K=4, slot 32 (35x35); Multi-dSprites K=6, slot 64 (64x64)
        (EfficientMORL configs). Others are not in the papers: K = max objects + 1, slot 64:
        Bouncing Balls (4 balls) K=5; Scattered MNIST/Shapes K=7 (``max6``) or 13 (``max12``);
        Multi-dSprites ``binarized`` (2-3 sprites) keeps the paper's K=6 model unchanged."""
        if dataset == "tetrominoes":
            return cls(num_slots=4, slot_size=32)
        if dataset == "multi_dsprites":
            return cls(num_slots=6, slot_size=64)
        if dataset == "bouncing_balls":
            return cls(num_slots=5)
        if dataset in ("scattered_mnist", "scattered_shapes"):
            return cls(num_slots=13 if variant == "max12" else 7)
        return cls()


class SlotAttentionModule(nn.Module):
    """Iterative attention: inputs [B,N,D_in] -> slots [B,K,D] (and the last attention [B,K,N])."""

    def __init__(self, num_slots: int, dim: int, in_dim: int, iterations: int = 3, mlp_hidden: int = 128,
                 eps: float = 1e-8):
        super().__init__()
        self.k, self.dim, self.iterations, self.eps = num_slots, dim, iterations, eps
        self.norm_inputs = nn.LayerNorm(in_dim)
        self.norm_slots = nn.LayerNorm(dim)
        self.norm_mlp = nn.LayerNorm(dim)
        # no bias on q/k/v, as in the official code (lucidrains' port adds them; spec pitfall)
        self.q = nn.Linear(dim, dim, bias=False)
        self.kproj = nn.Linear(in_dim, dim, bias=False)
        self.v = nn.Linear(in_dim, dim, bias=False)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_hidden), nn.ReLU(), nn.Linear(mlp_hidden, dim))
        self.mu = nn.Parameter(torch.empty(1, 1, dim))
        self.log_sigma = nn.Parameter(torch.empty(1, 1, dim))
        bound = (6.0 / (1 + dim)) ** 0.5  # glorot-uniform of a [1, dim] tensor, as the official code
        nn.init.uniform_(self.mu, -bound, bound)
        nn.init.uniform_(self.log_sigma, -bound, bound)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = inputs.shape[0]
        inputs = self.norm_inputs(inputs)
        k, v = self.kproj(inputs), self.v(inputs)
        noise = torch.randn(b, self.k, self.dim, device=inputs.device, dtype=self.mu.dtype)
        slots = self.mu + self.log_sigma.exp() * noise
        scale = self.dim ** -0.5
        attn = None
        for _ in range(self.iterations):
            prev = slots
            q = self.q(self.norm_slots(slots))
            logits = torch.einsum("bkd,bnd->bkn", q, k) * scale
            attn = logits.float().softmax(dim=1) + self.eps  # softmax over slots: slots compete for inputs
            weights = attn / attn.sum(dim=2, keepdim=True)  # weighted mean over inputs
            updates = torch.einsum("bkn,bnd->bkd", weights.to(v.dtype), v)
            slots = self.gru(updates.reshape(-1, self.dim), prev.reshape(-1, self.dim).to(updates.dtype))
            slots = slots.view(b, self.k, self.dim)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn


class SlotAttentionAutoEncoder(nn.Module):
    """Encoder -> slot attention -> per-slot broadcast decoder -> alpha composition."""

    def __init__(self, cfg: SlotAttentionConfig, num_slots: int, resolution: tuple[int, int], channels: int):
        super().__init__()
        h, w = resolution
        e = cfg.encoder_channels
        self.k, self.channels = num_slots, channels
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, e, 5, padding=2), nn.ReLU(),
            nn.Conv2d(e, e, 5, padding=2), nn.ReLU(),
            nn.Conv2d(e, e, 5, padding=2), nn.ReLU(),
            nn.Conv2d(e, e, 5, padding=2), nn.ReLU())
        self.pos = SoftPositionEmbed(e, (h, w))
        self.norm = nn.LayerNorm(e)
        self.mlp = nn.Sequential(nn.Linear(e, e), nn.ReLU(), nn.Linear(e, e))
        self.slot_attention = SlotAttentionModule(num_slots, cfg.slot_size, e, cfg.iterations, cfg.mlp_hidden,
                                                  cfg.eps)
        self.decoder = BroadcastDecoder(cfg.slot_size, channels + 1, (h, w),
                                        [cfg.decoder_channels] * cfg.decoder_layers, kernel=5, out_kernel=3,
                                        act=nn.ReLU, coords="sa")

    def components(self, x: torch.Tensor):
        """x [B,C,H,W] in [0,1] -> (recon [-1,1] [B,C,H,W], means [B,K,C,H,W], log masks [B,K,H,W])."""
        b, c, h, w = x.shape
        feats = self.encoder(x * 2.0 - 1.0)  # the official code feeds images in [-1, 1]
        feats = self.pos(feats.permute(0, 2, 3, 1)).reshape(b, h * w, -1)
        feats = self.mlp(self.norm(feats))
        slots, _ = self.slot_attention(feats)
        out = self.decoder(slots.reshape(b * self.k, -1)).float().view(b, self.k, c + 1, h, w)
        means, logits = out[:, :, :c], out[:, :, c]
        log_masks = logits.log_softmax(dim=1)
        recon = (means * log_masks.exp().unsqueeze(2)).sum(1)
        return recon, means, log_masks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        recon, _, _ = self.components(x)
        return F.mse_loss(recon, x.float() * 2.0 - 1.0)

    def decompose(self, x: torch.Tensor):
        recon, _, log_masks = self.components(x)
        return ((recon + 1.0) / 2.0).clamp(0, 1), log_masks.exp()


@register_method("slot_attention", kinds={"image", "colour", "binary"}, config=SlotAttentionConfig)
class SlotAttention(LearnedImageMethod):
    """Slot Attention; masks are the argmax of the decoder's alpha masks, ids 1..K."""

    def build_model(self) -> nn.Module:
        _, h, w, c = self.info.shape
        return SlotAttentionAutoEncoder(self.config, self.num_slots(), (h, w), c)
