"""MONet (Burgess et al. 2019): recurrent attention U-Net + component VAE.

**Source: the unmodified model of Burgess et al. 2019, whole.** The only MONet row ocbench shows is the IODINE
paper's Multi-dSprites FG-ARI 90.4 ± 0.8 (``leaderboard/paper_results.csv``; seed 001 Table 1), which
seed 001 §4.1 says was obtained "using the unmodified model" of Burgess et al. (its CLEVR6 changes, 7 slots
and sigma 0.06 / 0.1, apply to CLEVR only). Every hyper-parameter below therefore comes from Burgess et al.
(arXiv 1901.11390, App. B; not in the seeds, so checked against the re-implementation
``applied-ai-lab/genesis``, whose ``README.md`` "NOTE 1" gives the flags that reproduce Burgess et al.:
``--geco False --pixel_std1 0.09 --pixel_std2 0.11 --train_iter 1000000 --batch_size 64 --optimiser
rmsprop``, with ``train.py``'s ``learning_rate`` 1e-4 and, without GECO, both KL terms weighted by ``beta``
0.5): RMSProp lr 1e-4, no learning-rate schedule, batch 64, 1M iterations, sigma_bg 0.09 / sigma_fg 0.11,
beta 0.5, gamma 0.5, latent 16. genesis also warms beta up over 20 % of training (``beta_warmup``), its own
addition, not copied. Nothing is taken from ``addtt/object-centric-library`` any more (its Adam / 500k /
Tetrominoes sigma 0.3 / 0.36 were a second source).

The attention network carves the image step by step: with scope s_0 = 1, step k outputs alpha_k
and m_k = s_{k-1} alpha_k, s_k = s_{k-1} (1 - alpha_k); the last mask is the remaining scope (so
slot 1 is the first, usually background, step: the deterministic order of the spec's pitfall).
The component VAE encodes [x, log m_k] and a spatial broadcast decoder returns the component's
mean and mask logit. Loss (per image, mean over the batch):

    -log sum_k m_k N(x; mu_k, sigma_k^2)  + beta * sum_k KL(q(z_k|x,m_k) || N(0,I))
    + gamma * KL(m || softmax_k(decoded mask logits))

sigma_k = sigma_bg for the first slot, sigma_fg for the others. Architecture after Burgess et
al. App. B: U-Net blocks of conv3x3 + instance norm + ReLU with nearest down/up-sampling and a
3-layer MLP (128, 128) bottleneck; VAE encoder 4 x conv3x3 stride 2 (32, 32, 64, 64) + MLP 256;
broadcast decoder over (H+8, W+8) with 4 unpadded conv3x3 (32) and a 1x1 output conv.

Documented, not matched: the paper does not give RMSProp's decay/epsilon; the shared trainer uses
PyTorch's RMSprop (alpha 0.99, eps = ``eps`` 1e-8, no momentum), as the genesis re-implementation does
(``train.py``: ``optim.RMSprop(model.parameters(), config.learning_rate)``). The colour means go through a
sigmoid (ocbench choice: keeps the reconstruction in [0, 1]). The U-Net depth follows the image size as in
genesis (``models/monet_config.py``: ``UNet(int(np.log2(img_size) - 1))``: 5 blocks at 64², 4 at 35²);
its channel widths are ocbench's (the paper does not list them).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelSlots, config_for, register_method
from .nn import BroadcastDecoder, gaussian_log_prob, kl_normal_std
from .trainer import LearnedImageMethod, TrainSettings


@dataclasses.dataclass
class MONetConfig(TrainSettings):
    """Burgess et al. 2019 (App. B) for every dataset; see the module docstring for the sources."""

    num_slots: int | None = None  # None: max objects + 1 (background); Multi-dSprites 6 (as IODINE, cfg K)
    latent: int = 16  # Burgess et al. App. B.2 (component VAE latent 16)
    unet_blocks: int = 5  # 64x64 images: 5 blocks (Burgess et al. App. B.1; genesis monet_config.py log2(64) - 1)
    unet_channels: int = 32  # block widths c, 2c, 2c, 4c, 4c (ocbench; genesis filter_start 32)
    unet_mlp: int = 128  # Burgess et al. App. B.1: 3-layer MLP 128, 128
    vae_channels: int = 32  # encoder widths c, c, 2c, 2c: 32, 32, 64, 64 (Burgess et al. App. B.2)
    vae_mlp: int = 256  # Burgess et al. App. B.2
    decoder_channels: int = 32  # Burgess et al. App. B.2: 4 x conv3x3 32, unpadded
    sigma_bg: float = 0.09  # Burgess et al.; genesis README NOTE 1 --pixel_std1 0.09
    sigma_fg: float = 0.11  # Burgess et al.; genesis README NOTE 1 --pixel_std2 0.11
    beta: float = 0.5  # Burgess et al. App. B (genesis train.py beta 0.5, both KLs without GECO)
    gamma: float = 0.5  # Burgess et al. App. B
    steps: int = 1_000_000  # genesis README NOTE 1 --train_iter 1000000
    batch_size: int = 64  # genesis README NOTE 1 --batch_size 64
    lr: float = 1e-4  # Burgess et al.; genesis train.py learning_rate 0.0001
    optimizer: str = "rmsprop"  # genesis README NOTE 1 --optimiser rmsprop
    decay_rate: float = 1.0  # no learning-rate schedule (genesis train.py: none)
    warmup_steps: int = 0  # none

    @classmethod
    def for_dataset(cls, dataset: str, variant: str | None = None) -> MONetConfig:
        """The config :data:`DATASET_SETTINGS` gives (dataset, variant)."""
        return config_for(cls, DATASET_SETTINGS, dataset, variant)


# The same model everywhere; only K and the U-Net depth (by image size) change.
DATASET_SETTINGS = {
    # Tetrominoes (35x35, no paper row): K=4; 4 U-Net blocks = int(log2(35) - 1) (genesis monet_config.py)
    "tetrominoes": {"num_slots": 4, "unet_blocks": 4},
    # Multi-dSprites: K=6, IODINE's K for the same data (cfg L135); the paper row does not state MONet's
    "multi_dsprites": {"num_slots": 6},
    # not in the papers: 4 balls + background
    "bouncing_balls": {"num_slots": 5},
    # not in the papers: max6 -> 7, max12 -> 13 (max objects + background)
    "scattered_mnist": {"num_slots": 7},
    ("scattered_mnist", "max12"): {"num_slots": 13},
    "scattered_shapes": {"num_slots": 7},
    ("scattered_shapes", "max12"): {"num_slots": 13},
}


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.InstanceNorm2d(cout, affine=True), nn.ReLU()
    )


class UNet(nn.Module):
    """Attention U-Net: [N, C+1, H, W] -> one logit map [N, 1, H, W]."""

    def __init__(self, in_ch: int, blocks: int, c: int, mlp: int, resolution: tuple[int, int]):
        super().__init__()
        widths = [c, 2 * c, 2 * c, 4 * c, 4 * c, 4 * c, 4 * c][:blocks]
        self.down = nn.ModuleList(_block(a, b) for a, b in zip([in_ch] + widths[:-1], widths))
        h, w = resolution
        for _ in range(blocks - 1):
            h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise ValueError(f"{blocks} U-Net blocks halve {resolution} below one pixel")
        flat = widths[-1] * h * w
        self.mlp = nn.Sequential(
            nn.Linear(flat, mlp), nn.ReLU(), nn.Linear(mlp, mlp), nn.ReLU(), nn.Linear(mlp, flat), nn.ReLU()
        )
        self.up = nn.ModuleList(_block(2 * widths[i], widths[i - 1] if i else c) for i in range(blocks))
        self.out = nn.Conv2d(c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x)
            skips.append(x)
            if i < len(self.down) - 1:
                x = F.interpolate(x, size=(x.shape[-2] // 2, x.shape[-1] // 2), mode="nearest")
        x = self.mlp(x.flatten(1)).view_as(x)
        for i in reversed(range(len(self.up))):
            x = self.up[i](torch.cat([x, skips[i]], dim=1))
            if i:
                x = F.interpolate(x, size=skips[i - 1].shape[-2:], mode="nearest")
        return self.out(x)


class MONetModel(nn.Module):
    def __init__(self, cfg: MONetConfig, num_slots: int, resolution: tuple[int, int], channels: int):
        super().__init__()
        self.cfg, self.k, self.c = cfg, num_slots, channels
        h, w = resolution
        self.attention = UNet(channels + 1, cfg.unet_blocks, cfg.unet_channels, cfg.unet_mlp, resolution)
        v = cfg.vae_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(channels + 1, v, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(v, v, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(v, 2 * v, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * v, 2 * v, 3, 2, 1),
            nn.ReLU(),
            nn.Flatten(),
        )
        for _ in range(4):
            h, w = (h + 1) // 2, (w + 1) // 2
        self.encoder_head = nn.Sequential(
            nn.Linear(2 * v * h * w, cfg.vae_mlp), nn.ReLU(), nn.Linear(cfg.vae_mlp, 2 * cfg.latent)
        )
        self.decoder = BroadcastDecoder(
            cfg.latent,
            channels + 1,
            resolution,
            [cfg.decoder_channels] * 4,
            kernel=3,
            out_kernel=1,
            act=nn.ReLU,
            coords="linear",
            pad=4,
        )
        self.register_buffer("sigma", self._sigmas(num_slots), persistent=False)

    def _sigmas(self, k: int) -> torch.Tensor:
        """sigma_bg for the first (background) slot, sigma_fg for the others, as [1,K,1,1,1]."""
        sig = torch.full((k,), self.cfg.sigma_fg)
        sig[0] = self.cfg.sigma_bg
        return sig.view(1, k, 1, 1, 1)

    def set_num_slots(self, k: int) -> None:
        """Use ``k`` slots from now on: the attention network runs K - 1 steps and the last mask is the scope
        left, the VAE and the decoder are shared by all slots, so no weight depends on K; the per-slot pixel
        sigmas (not trained) are rebuilt for the new K."""
        self.k = int(k)
        self.sigma = self._sigmas(self.k).to(self.sigma.device)

    def attend(self, x: torch.Tensor) -> torch.Tensor:
        """Log attention masks [B,K,H,W] (they sum to one over K by construction)."""
        log_scope = torch.zeros_like(x[:, :1])
        logs = []
        for _ in range(self.k - 1):
            logit = self.attention(torch.cat([x, log_scope], dim=1)).float()
            logs.append(log_scope + F.logsigmoid(logit))
            log_scope = log_scope + F.logsigmoid(-logit)
        logs.append(log_scope)
        return torch.cat(logs, dim=1)

    def components(self, x: torch.Tensor, sample: bool):
        b, c, h, w = x.shape
        log_m = self.attend(x)
        inp = torch.cat([x.unsqueeze(1).expand(b, self.k, c, h, w), log_m.unsqueeze(2).to(x.dtype)], dim=2)
        stats = self.encoder_head(self.encoder(inp.reshape(b * self.k, c + 1, h, w))).float()
        mu, logvar = stats.chunk(2, dim=-1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu) if sample else mu
        out = self.decoder(z).float().view(b, self.k, c + 1, h, w)
        means = torch.sigmoid(out[:, :, :c])
        return log_m, means, out[:, :, c], mu, logvar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = x.float()
        log_m, means, mask_logits, mu, logvar = self.components(x, sample=True)
        log_px = gaussian_log_prob(x.unsqueeze(1), means, self.sigma).sum(2)  # [B,K,H,W]
        nll = -torch.logsumexp(log_m + log_px, dim=1).flatten(1).sum(1)
        kl_z = kl_normal_std(mu, logvar).view(b, self.k).sum(1)
        m = log_m.exp()
        kl_mask = (m * (log_m - mask_logits.log_softmax(dim=1))).flatten(1).sum(1)
        return (nll + self.cfg.beta * kl_z + self.cfg.gamma * kl_mask).mean()

    def decompose(self, x: torch.Tensor):
        log_m, means, _, _, _ = self.components(x, sample=False)
        m = log_m.exp()
        return (m.unsqueeze(2) * means).sum(1).clamp(0, 1), m


@register_method("monet", kinds={"image", "colour", "binary"}, config=MONetConfig)
class MONet(ModelSlots, LearnedImageMethod):
    """MONet; masks are the argmax of the attention masks, ids 1..K (id 1 = the first, background step; K may
    change at test time: ``set_eval_slots``)."""

    dataset_settings = DATASET_SETTINGS

    def build_model(self) -> nn.Module:
        _, h, w, c = self.info.shape
        return MONetModel(self.config, self.num_slots(), (h, w), c)
