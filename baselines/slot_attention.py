"""Slot Attention (Locatello et al. 2020), object discovery model.

Follows the official code, ``google-research/google-research:slot_attention/model.py`` (commit 20622ff;
"official" below): CNN encoder (4 x conv5x5, 64 channels, ReLU, 'same' padding) + soft position embedding
(a learned linear map of the [y, x, 1-y, 1-x] grid), LayerNorm and a 2-layer MLP (64, 64); slot attention
with a softmax over slots, q/k/v **without bias**, epsilon 1e-8, GRU + residual MLP (hidden 128), 3
iterations, slots initialised from a learned Gaussian (glorot-uniform mu and log sigma); a spatial
broadcast decoder per slot returning C colour values and one alpha logit, composed by a softmax over
slots; MSE loss on images in [-1, 1] (``object_discovery/train.py``).

**Decoder on Tetrominoes / Multi-dSprites.** The configs the spec follows,
``pemami4911/EfficientMORL:configs/train/{tetrominoes,multi_dsprites}/SlotAttention.json`` (commit 67939f0;
"EMORL" below), set ``"image_decoder": "small"``, whose layers are in ``lib/model.py`` ``ImageDecoder``
(L207-219): the slot is broadcast to (H + 6) x (W + 6), the learned position embedding of that grid is
added (L217-220, L227-233), then 3 x [conv 5x5, 32 channels, padding 1, ReLU] shrink it to H x W and a
conv 3x3 (padding 1) gives C + 1 channels. ocbench builds exactly these layers (``decoder_*`` fields) for
every dataset; the official CLEVR decoder (8 x 8 grid, stride-2 transposed convs) is not used.

Documented, not matched: EMORL's version of the same model also squashes the colours with a sigmoid and
compares them with the image in [0, 1] summed over pixels (``lib/model.py`` L150-152, L235), initialises
the decoder with ``xavier_normal`` gain 0.02 (L77, ``lib/utils.py`` L32) and the slots from N(0,
softplus(1)) with learned parameters (L74, L110-115). ocbench keeps the official code's output (no
squashing, mean MSE in [-1, 1]), PyTorch's default initialisation and the official slot initialisation.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelSlots, config_for, register_method
from .nn import BroadcastDecoder, SoftPositionEmbed
from .trainer import LearnedImageMethod, TrainSettings


@dataclasses.dataclass
class SlotAttentionConfig(TrainSettings):
    """Hyper-parameters with their sources (official = ``slot_attention/object_discovery/train.py`` and
    ``model.py``; EMORL = ``EfficientMORL:configs/train/<dataset>/SlotAttention.json`` and ``lib/model.py``)."""

    num_slots: int | None = None  # None: max objects + 1 (background); EMORL "K" 4 / 6
    slot_size: int = 64  # official model.py slot_size=64; EMORL "z_size" 32 (Tetrominoes) / 64
    iterations: int = 3  # official train.py num_iterations=3; EMORL lib/model.py L37
    mlp_hidden: int = 128  # official model.py mlp_hidden_size=128
    encoder_channels: int = 64  # official model.py encoder_cnn, 4 x conv5 64
    decoder_channels: int = 32  # EMORL lib/model.py L209-213 ("small"): 32 channels
    decoder_layers: int = 3  # EMORL lib/model.py L209-214: 3 x conv5 + ReLU
    decoder_kernel: int = 5  # EMORL lib/model.py L209-213
    decoder_padding: int = 1  # EMORL lib/model.py L209-213 (padding 1; the grid is H + 2 * decoder_layers)
    decoder_out_kernel: int = 3  # EMORL lib/model.py L215: conv3, padding 1, to C + 1
    steps: int = 500_000  # official train.py num_train_steps; EMORL "iters" 500000
    batch_size: int = 64  # official train.py batch_size; EMORL "batch_size" 64
    lr: float = 4e-4  # official train.py learning_rate; EMORL "lr" 0.0004
    warmup_steps: int = 10_000  # official train.py warmup_steps; EMORL train.py L41 ("use_scheduler": true)
    decay_rate: float = 0.5  # official train.py decay_rate; EMORL train.py L42, L142
    decay_steps: int = 100_000  # official train.py decay_steps; EMORL train.py L43, L142
    eps: float = 1e-8  # Adam epsilon (official train.py) and the attention epsilon (model.py)

    @classmethod
    def for_dataset(cls, dataset: str, variant: str | None = None) -> SlotAttentionConfig:
        """The config :data:`DATASET_SETTINGS` gives (dataset, variant)."""
        return config_for(cls, DATASET_SETTINGS, dataset, variant)


# Per-dataset values (the decoder is EMORL's "small" decoder everywhere). Datasets not in the papers get
# K = max objects + 1 and slot 64.
DATASET_SETTINGS = {
    # EMORL configs/train/tetrominoes/SlotAttention.json: "K" 4, "z_size" 32 (35x35 images)
    "tetrominoes": {"num_slots": 4, "slot_size": 32},
    # EMORL configs/train/multi_dsprites/SlotAttention.json: "K" 6, "z_size" 64 (64x64); the binarized
    # variant (2-3 sprites) keeps the paper's K=6 model unchanged
    "multi_dsprites": {"num_slots": 6, "slot_size": 64},
    # not in the papers: 4 balls + background
    "bouncing_balls": {"num_slots": 5},
    # not in the papers: max6 -> 7, max12 -> 13 (max objects + background)
    "scattered_mnist": {"num_slots": 7},
    ("scattered_mnist", "max12"): {"num_slots": 13},
    "scattered_shapes": {"num_slots": 7},
    ("scattered_shapes", "max12"): {"num_slots": 13},
}


class SlotAttentionModule(nn.Module):
    """Iterative attention: inputs [B,N,D_in] -> slots [B,K,D] (and the last attention [B,K,N])."""

    def __init__(
        self, num_slots: int, dim: int, in_dim: int, iterations: int = 3, mlp_hidden: int = 128, eps: float = 1e-8
    ):
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
        scale = self.dim**-0.5
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
            nn.Conv2d(channels, e, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(e, e, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(e, e, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(e, e, 5, padding=2),
            nn.ReLU(),
        )
        self.pos = SoftPositionEmbed(e, (h, w))
        self.norm = nn.LayerNorm(e)
        self.mlp = nn.Sequential(nn.Linear(e, e), nn.ReLU(), nn.Linear(e, e))
        self.slot_attention = SlotAttentionModule(num_slots, cfg.slot_size, e, cfg.iterations, cfg.mlp_hidden, cfg.eps)
        # EMORL "small" decoder: each hidden conv shrinks the broadcast grid by kernel - 1 - 2 * padding
        per_layer = cfg.decoder_kernel - 1 - 2 * cfg.decoder_padding
        if per_layer < 0 or per_layer * cfg.decoder_layers % 2:
            raise ValueError(
                f"decoder_kernel={cfg.decoder_kernel} with decoder_padding={cfg.decoder_padding} "
                f"cannot shrink a broadcast grid back to {h}x{w} in {cfg.decoder_layers} layers"
            )
        self.decoder = BroadcastDecoder(
            cfg.slot_size,
            channels + 1,
            (h, w),
            [cfg.decoder_channels] * cfg.decoder_layers,
            kernel=cfg.decoder_kernel,
            out_kernel=cfg.decoder_out_kernel,
            act=nn.ReLU,
            coords="sa",
            pad=per_layer * cfg.decoder_layers // 2,
            conv_padding=cfg.decoder_padding,
            out_padding=cfg.decoder_out_kernel // 2,
        )

    def set_num_slots(self, k: int) -> None:
        """Use ``k`` slots from now on: no weight depends on K (the K initial slots are samples of one learned
        Gaussian, attention, GRU, MLP and decoder are shared by all slots), so only the count changes."""
        self.k = self.slot_attention.k = int(k)

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
class SlotAttention(ModelSlots, LearnedImageMethod):
    """Slot Attention; masks are the argmax of the decoder's alpha masks, ids 1..K (K may change at test time:
    ``set_eval_slots``)."""

    dataset_settings = DATASET_SETTINGS

    def build_model(self) -> nn.Module:
        _, h, w, c = self.info.shape
        return SlotAttentionAutoEncoder(self.config, self.num_slots(), (h, w), c)
