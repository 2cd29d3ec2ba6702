"""DTI-Sprites (Monnier et al. 2021, "Unsupervised Layered Image Decomposition into Object Prototypes").

An image is L object layers over a background, each layer one of K learned RGBA sprites (or the empty
sprite) moved by transformations that networks predict from the image (seed 004 §3.1). Layers are
composed back to front (Eq. 2), optionally with a predicted occlusion matrix; the sprite of each layer is
chosen greedily (Algorithm 1, T passes over the layers); the loss is the reconstruction error of the chosen
composition plus λ per non-empty sprite (Eq. 5). Training tricks of App. C: uniform noise in the masks
(C.3), a soft clip keeping sprites near [0, 1] (C.2), sprites frozen for the first epochs, a curriculum
over the sprite transformations, reassignment of sprites chosen by fewer than 20/K % of the layers, Adam
with weight decay 1e-6 on the networks, and the networks' learning rate ×0.1 near the end.

Facts not in the paper come from the official code, ``monniert/dti-sprites`` (commit 07196bf):
``configs/tetro.yml`` and ``configs/dsprites.yml`` (the per-dataset values, cited key by key below),
``src/model/dti_sprites.py`` (composition, greedy selection, noise injection, reassignment threshold
``0.2 / n_sprites``, the instance labels and the with-background-off relabelling) and
``src/model/transformer.py`` (the transformation modules and their parametrisation). The code here is
ocbench's own. Where it differs from the official code, on purpose:

- **position module**: A = ``position_base_scale · exp(s) · I`` with a translation, so zero parameters and
  ``position_base_scale = 1`` give the identity; the official ``exp(s)·I + I`` (a 2× zoom-out at zero) is
  matched at zero by the default ``position_base_scale = 2`` (gradients in s differ by exp(s) vs 2 exp(s));
- **encoder**: the CIFAR mini ResNet-(6n+2) (n = 5: ResNet-32, 16/32/64 channels, 1×1 convolution
  shortcuts) for every image size; the paper's ResNet-18 for images over 65 px is not built;
- **schedule**: epochs are turned into steps with ``steps_per_epoch`` (60 000 / 32 = 1875, the spec's
  "210 epochs ≈ 394k iterations"), and, as every ocbench schedule, scaled with the profile;
- **background-to-layer option** (``assign_background_to_nearest_layer``, the paper's ARI-FG protocol,
  official ``transform(pred_instance_labels=True, with_bkg=False)``): a predicted-background pixel goes to
  the layer whose transformed sprite colour is nearest to the pixel's, over non-empty layers only (the
  official code also lets an empty layer, of colour 0, win).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import FitContext, Prediction, register_method
from .trainer import LearnedImageMethod, Trainer, TrainSettings

TRANSFORMS = ("colour", "position", "similarity", "projective")
N_PARAMS = {"position": 3, "similarity": 4, "projective": 8}  # colour: 2 per channel


@dataclasses.dataclass
class DTISpritesConfig(TrainSettings):
    """Hyper-parameters. Defaults are for datasets the paper did not use (not from the paper); the rows of
    :data:`DATASET_SETTINGS` give the paper's configs, each value cited."""

    n_sprites: int = 8  # K (not counting the empty sprite)
    n_layers: int | None = None  # L; None: the dataset's most objects
    n_backgrounds: int = 1  # 0: a black background (c_0 = 0), 1: one learned background
    add_empty_sprite: bool = True
    lambda_empty: float = 1e-4  # λ, seed 004 §3.2
    sprite_size: tuple[int, int] | None = None  # None: the image size (official default)
    layer_transforms: tuple[str, ...] = ("colour", "position")
    sprite_transforms: tuple[str, ...] = ()
    background_transforms: tuple[str, ...] = ("colour",)
    sprite_curriculum: tuple[int, ...] = ()  # epoch at which each sprite transform starts (empty: at once)
    pred_occlusion: bool = False
    greedy_iters: int = 3  # T, seed 004 §3.2 ("T = 3 in these experiments" beyond Tetrominoes)
    mask_noise: float = 0.4  # seed 004 App. C.3: U[-0.4, 0.4]
    proto_init_value: float = 0.9  # official dti_sprites.py generate_data(..., value=0.9)
    bkg_init_value: float = 0.5  # official dti_sprites.py generate_data(..., value=0.5)
    mask_init_std: float = 5.0  # gaussian_weights_std
    encoder_depth: int = 32  # mini ResNet-32, seed 004 §3.3
    encoder_pool: int = 1  # adaptive average pool to pool × pool (with_pool)
    head_hidden: int = 128  # seed 004 §3.3: MLPs with two hidden layers of 128 units
    head_layers: int = 2
    position_base_scale: float = 2.0  # see the module docstring
    freeze_sprite_epochs: int = 0
    steps_per_epoch: int = 1875  # 60 000 images / batch 32
    lr_drop_epoch: int | None = None  # the networks' lr ×0.1 from this epoch (App. C.2)
    lr_drop_factor: float = 0.1
    check_cluster_interval: int = 50  # steps between reassignment checks
    reassign_threshold: float = 0.2  # divided by K: official EMPTY_CLUSTER_THRESHOLD / n_sprites
    weight_decay: float = 1e-6  # App. C.2, on the networks only
    assign_background_to_nearest_layer: bool = False  # prediction option (the paper's ARI-FG protocol)
    steps: int = 394_000
    batch_size: int = 32  # App. C.2
    lr: float = 1e-4  # App. C.2; tetro.yml / dsprites.yml training.optimizer.lr
    compile: bool | None = False  # data-dependent greedy loop: eager

    def __post_init__(self):
        # --set and JSON give lists; the model wants tuples
        for name in ("layer_transforms", "sprite_transforms", "background_transforms", "sprite_curriculum"):
            setattr(self, name, tuple(getattr(self, name)))
        if self.sprite_size is not None:
            self.sprite_size = tuple(int(s) for s in self.sprite_size)
        for name in ("layer_transforms", "sprite_transforms", "background_transforms"):
            bad = [t for t in getattr(self, name) if t not in TRANSFORMS]
            if bad:
                raise ValueError(f"{name} names unknown transformations {bad}; valid: {list(TRANSFORMS)}")
        if self.sprite_curriculum and len(self.sprite_curriculum) != len(self.sprite_transforms):
            raise ValueError(
                f"sprite_curriculum {self.sprite_curriculum} needs one start epoch per sprite transform "
                f"{self.sprite_transforms}"
            )
        if self.n_backgrounds not in (0, 1):
            raise ValueError(f"n_backgrounds must be 0 or 1, got {self.n_backgrounds!r}")
        if self.n_sprites < 1 or self.greedy_iters < 1 or (self.n_layers is not None and self.n_layers < 1):
            raise ValueError("n_sprites, greedy_iters and n_layers must be positive")


# monniert/dti-sprites configs (commit 07196bf): key names in brackets
DATASET_SETTINGS: dict[Any, dict[str, Any]] = {
    "tetrominoes": {
        "n_sprites": 19,  # tetro.yml model.n_sprites
        "n_layers": 3,  # tetro.yml model.n_objects
        "n_backgrounds": 0,  # tetro.yml model.n_backgrounds
        "add_empty_sprite": False,  # tetro.yml sets no add_empty_sprite; dti_sprites.py default False
        "layer_transforms": ("colour", "position"),  # tetro.yml transformation_sequence_layer: color_position
        "sprite_transforms": (),  # tetro.yml transformation_sequence: identity
        "sprite_size": (24, 24),  # tetro.yml sprite_size
        "mask_init_std": 5.0,  # tetro.yml gaussian_weights_std
        "pred_occlusion": False,  # tetro.yml pred_occlusion
        "greedy_iters": 1,  # tetro.yml greedy_algo_iter (seed 004 §3.2: T = 1)
        "freeze_sprite_epochs": 1,  # tetro.yml freeze_sprite
        "mask_noise": 0.4,  # tetro.yml inject_noise
        "encoder_depth": 32,  # tetro.yml encoder_name: resnet32
        "encoder_pool": 1,  # tetro.yml: no with_pool (global average pool)
        "steps": 210 * 1875,  # tetro.yml training.n_epoches 210
        "lr_drop_epoch": 200,  # tetro.yml scheduler milestones [100, 200], gamma [1, 0.1]
        "check_cluster_interval": 50,  # tetro.yml check_cluster_interval
        "batch_size": 32,  # tetro.yml training.batch_size
        "lr": 1e-4,  # tetro.yml optimizer.lr
        "weight_decay": 1e-6,  # tetro.yml optimizer.transformer.weight_decay
    },
    "multi_dsprites": {
        "n_sprites": 3,  # dsprites.yml model.n_sprites
        "n_layers": 5,  # dsprites.yml model.n_objects
        "n_backgrounds": 1,  # dsprites.yml model.n_backgrounds
        "add_empty_sprite": True,  # dsprites.yml add_empty_sprite
        "lambda_empty": 1e-4,  # dsprites.yml lambda_empty_sprite
        "layer_transforms": ("colour", "position"),  # dsprites.yml transformation_sequence_layer
        "sprite_transforms": ("similarity",),  # dsprites.yml transformation_sequence: identity_similarity
        "sprite_curriculum": (20,),  # dsprites.yml curriculum_learning [20]
        "background_transforms": ("colour",),  # dsprites.yml transformation_sequence_bkg: color
        "sprite_size": (28, 28),  # dsprites.yml sprite_size
        "mask_init_std": 7.0,  # dsprites.yml gaussian_weights_std
        "pred_occlusion": True,  # dsprites.yml pred_occlusion
        "greedy_iters": 3,  # dsprites.yml greedy_algo_iter
        "freeze_sprite_epochs": 10,  # dsprites.yml freeze_sprite
        "mask_noise": 0.4,  # dsprites.yml inject_noise
        "encoder_depth": 32,  # dsprites.yml encoder_name: resnet32
        "encoder_pool": 4,  # dsprites.yml with_pool [4, 4]
        "steps": 510 * 1875,  # dsprites.yml training.n_epoches 510
        "lr_drop_epoch": 500,  # dsprites.yml scheduler milestones [250, 500], gamma [1, 0.1]
        "check_cluster_interval": 100,  # dsprites.yml check_cluster_interval
        "batch_size": 32,  # dsprites.yml training.batch_size
        "lr": 1e-4,  # dsprites.yml optimizer.lr
        "weight_decay": 1e-6,  # dsprites.yml optimizer.transformer.weight_decay
    },
}


def softclip(x: torch.Tensor, slope: float = 0.01) -> torch.Tensor:
    """Identity on [0, 1], slope 0.01 outside (App. C.2): sprites stay near [0, 1] and still get gradients."""
    return torch.where(x < 0, slope * x, torch.where(x > 1, 1 + slope * (x - 1), x))


# ---------------------------------------------------------------------------------------------- encoder
class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.short(x))


class MiniResNet(nn.Module):
    """CIFAR ResNet-(6n+2) truncated after the average pool: 16/32/64 channels, 64·pool² features."""

    def __init__(self, in_ch: int, depth: int = 32, pool: int = 1):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"mini ResNet depth must be 6n + 2 (8, 14, 20, 32, ...), got {depth}")
        n = (depth - 2) // 6
        layers: list[nn.Module] = [nn.Conv2d(in_ch, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
        cin = 16
        for i, cout in enumerate((16, 32, 64)):
            for b in range(n):
                layers.append(_Block(cin, cout, 2 if (b == 0 and i > 0) else 1))
                cin = cout
        layers.append(nn.AdaptiveAvgPool2d(pool))
        self.net = nn.Sequential(*layers)
        self.out_features = 64 * pool * pool

    def forward(self, x):
        return self.net(x).flatten(1)


def mlp_head(cin: int, cout: int, hidden: int, layers: int) -> nn.Sequential:
    """MLP whose last layer starts at zero, so every transformation starts at its zero parameters."""
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(cin, hidden), nn.ReLU()]
        cin = hidden
    last = nn.Linear(cin, cout)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(*mods, last)


# ------------------------------------------------------------------------------------- transformations
def n_params(kind: str, channels: int) -> int:
    return 2 * channels if kind == "colour" else N_PARAMS[kind]


def apply_transform(
    kind: str, x: torch.Tensor, beta: torch.Tensor, out_size: tuple[int, int], channels: int, base_scale: float = 1.0
) -> torch.Tensor:
    """Transform ``x`` [N,C',h,w] (colour first, then mask/noise channels) with parameters ``beta`` [N,p].
    Each kind is the identity at ``beta = 0`` (colour on values in [0, 1]; position with base_scale 1)."""
    n = x.shape[0]
    if kind == "colour":  # per-channel affine (1 + w) c + b, soft-clipped; other channels untouched
        w, b = beta.view(n, channels, 2).unbind(-1)
        rgb = softclip((1 + w)[..., None, None] * x[:, :channels] + b[..., None, None])
        return torch.cat([rgb, x[:, channels:]], 1)
    eye = torch.eye(2, device=x.device, dtype=beta.dtype)
    if kind == "position":  # scale and translation
        s, t = beta[:, :1], beta[:, 1:3]
        theta = torch.cat([(base_scale * torch.exp(s))[..., None] * eye, t[..., None]], 2)
    elif kind == "similarity":  # scaled rotation and translation
        a, b, t = beta[:, :1, None], beta[:, 1:2, None], beta[:, 2:4]
        rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], device=x.device, dtype=beta.dtype)
        theta = torch.cat([(1 + a) * eye + b * rot, t[..., None]], 2)
    elif kind == "projective":  # homography I + beta (last entry fixed)
        h = torch.cat([beta, torch.zeros(n, 1, device=x.device, dtype=beta.dtype)], 1).view(n, 3, 3)
        h = h + torch.eye(3, device=x.device, dtype=beta.dtype)
        base = F.affine_grid(torch.eye(2, 3, device=x.device).expand(n, 2, 3), (n, 1, *out_size), align_corners=False)
        pts = torch.cat([base, torch.ones_like(base[..., :1])], -1) @ h.transpose(1, 2)[:, None]
        grid = pts[..., :2] / pts[..., 2:].clamp_min(1e-6)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    else:
        raise ValueError(f"unknown transformation {kind!r}; valid: {list(TRANSFORMS)}")
    grid = F.affine_grid(theta, (n, x.shape[1], *out_size), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


# --------------------------------------------------------------------------------------------- model
def composite(rgb: torch.Tensor, alpha: torch.Tensor, occ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. (2): layers ``rgb`` [N,B,C,H,W], ``alpha`` [N,B,1,H,W], occlusion ``occ`` [B,N,N] with
    ``occ[b, j, l] = 1`` when layer j occludes layer l. Returns (image [B,C,H,W], visibility [N,B,1,H,W])."""
    n = rgb.shape[0]
    vis = []
    for lay in range(n):
        v = alpha[lay]
        for j in range(n):
            if j != lay:
                v = v * (1 - occ[:, j, lay, None, None, None] * alpha[j])
        vis.append(v)
    vis_t = torch.stack(vis)
    return (vis_t * rgb).sum(0), vis_t


class DTISpritesModel(nn.Module):
    """Sprites, background, encoder and transformation heads; ``forward`` is the training loss."""

    def __init__(self, cfg: DTISpritesConfig, n_layers: int, image_size: tuple[int, int], channels: int):
        super().__init__()
        self.cfg, self.L, self.size, self.C = cfg, int(n_layers), tuple(image_size), int(channels)
        self.K = cfg.n_sprites + int(cfg.add_empty_sprite)  # candidates per layer; the empty one is last
        h, w = self.sprite_size = tuple(cfg.sprite_size or image_size)
        self.proto = nn.Parameter(torch.full((cfg.n_sprites, channels, h, w), cfg.proto_init_value))
        yy, xx = torch.meshgrid(torch.arange(h) - (h - 1) / 2, torch.arange(w) - (w - 1) / 2, indexing="ij")
        gauss = torch.exp(-(yy**2 + xx**2) / (2 * cfg.mask_init_std**2))
        self.mask = nn.Parameter(gauss.expand(cfg.n_sprites, 1, h, w).clone())
        if cfg.n_backgrounds:
            self.bkg = nn.Parameter(torch.full((1, channels, *image_size), cfg.bkg_init_value))
        self.encoder = MiniResNet(channels, cfg.encoder_depth, cfg.encoder_pool)
        f = self.encoder.out_features

        def heads(kinds, count):
            return nn.ModuleList(
                nn.ModuleDict({k: mlp_head(f, n_params(k, channels), cfg.head_hidden, cfg.head_layers) for k in kinds})
                for _ in range(count)
            )

        self.layer_heads = heads(cfg.layer_transforms, self.L)  # per layer, shared by its sprites
        self.sprite_heads = heads(cfg.sprite_transforms, self.L * self.K)  # per (layer, sprite)
        self.bkg_heads = heads(cfg.background_transforms if cfg.n_backgrounds else (), 1)
        if cfg.pred_occlusion:
            self.occ_head = mlp_head(f, self.L * (self.L - 1) // 2, cfg.head_hidden, cfg.head_layers)
        # training state kept in the checkpoint: selections per candidate since the last reassignment check
        self.register_buffer("usage", torch.zeros(self.K))
        self.frozen = False  # sprites detached (first epochs), set by the trainer's curriculum
        self.sprite_active = [True] * len(cfg.sprite_transforms)

    # ---- pieces
    def sprites(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(colours [K,C,h,w], raw or soft-clipped masks [K,1,h,w]) with the empty sprite last."""
        proto, mask = softclip(self.proto), self.mask
        if not (self.training and self.cfg.mask_noise):
            mask = softclip(mask)  # with noise, the clip comes after the noise (App. C.3)
        if self.cfg.add_empty_sprite:
            proto = torch.cat([proto, proto.new_zeros(1, *proto.shape[1:])])
            mask = torch.cat([mask, mask.new_zeros(1, *mask.shape[1:])])
        if self.frozen:
            proto, mask = proto.detach(), mask.detach()
        return proto, mask

    def occlusion(self, feats: torch.Tensor) -> torch.Tensor:
        """[B,L,L], ``occ[b, j, l]``: layer j occludes layer l; fixed back-to-front order unless predicted."""
        b, L = feats.shape[0], self.L
        if not self.cfg.pred_occlusion:
            return torch.tril(feats.new_ones(L, L), diagonal=-1).expand(b, L, L)
        lower = torch.zeros(b, L, L, device=feats.device, dtype=feats.dtype)
        i, j = torch.tril_indices(L, L, offset=-1, device=feats.device)
        lower[:, i, j] = torch.sigmoid(self.occ_head(feats))
        return lower + torch.triu(1 - lower.transpose(1, 2), diagonal=1)

    def candidates(self, x: torch.Tensor):
        """Every transformed sprite of every layer: colours [L,K,B,C,H,W], masks [L,K,B,1,H,W], background
        [B,C,H,W] (zeros without one) and occlusion [B,L,L]."""
        B, C = x.shape[0], self.C
        H, W = self.size
        h, w = self.sprite_size
        feats = self.encoder(x)
        proto, mask = self.sprites()
        noisy = self.training and self.cfg.mask_noise > 0
        parts = [proto, mask]
        if noisy:  # a canvas moved with the sprite carries the noise to where the sprite lands
            canvas = torch.ones_like(mask)
            if self.cfg.add_empty_sprite:
                canvas[-1] = 0
            parts.append(canvas)
        spr = torch.cat(parts, 1)  # [K,C',h,w]
        cols, masks = [], []
        spatial = any(k != "colour" for k in self.cfg.layer_transforms)
        if noisy:  # one noise map per sprite, shared by the layers and the batch (official)
            u = torch.rand(self.K, 1, 1, H, W, device=x.device) * 2 - 1
        for lay in range(self.L):
            s = spr[:, None].expand(self.K, B, *spr.shape[1:])
            if self.cfg.sprite_transforms:
                out = []
                for k in range(self.K):
                    sk = s[k]
                    hk = self.sprite_heads[lay * self.K + k]
                    for kind, on in zip(self.cfg.sprite_transforms, self.sprite_active):
                        if on:
                            sk = apply_transform(kind, sk, hk[kind](feats), (h, w), C)
                    out.append(sk)
                s = torch.stack(out)
            s = s.reshape(self.K * B, *s.shape[2:])
            s = s if (h, w) == (H, W) or spatial else F.interpolate(s, (H, W))
            for kind in self.cfg.layer_transforms:
                beta = self.layer_heads[lay][kind](feats).repeat(self.K, 1)
                s = apply_transform(kind, s, beta, (H, W), C, self.cfg.position_base_scale)
            s = s.view(self.K, B, -1, H, W)
            m = s[:, :, C : C + 1]
            if noisy:
                m = softclip(m + s[:, :, C + 1 :] * self.cfg.mask_noise * u)
            cols.append(s[:, :, :C])
            masks.append(m)
        if self.cfg.n_backgrounds:
            bkg = softclip(self.bkg).expand(B, -1, -1, -1)
            for kind in self.cfg.background_transforms:
                bkg = apply_transform(kind, bkg, self.bkg_heads[0][kind](feats), (H, W), C)
        else:
            bkg = x.new_zeros(B, C, H, W)
        return torch.stack(cols), torch.stack(masks), bkg, self.occlusion(feats)

    @staticmethod
    def with_background(bkg, rgb, alpha, occ):
        """Prepend the background as layer 0 (alpha 1, occluded by every layer, occluding none)."""
        B, L = occ.shape[0], occ.shape[1]
        full = occ.new_zeros(B, L + 1, L + 1)
        full[:, 1:, 0] = 1
        full[:, 1:, 1:] = occ
        rgb = torch.cat([bkg[None], rgb])
        alpha = torch.cat([torch.ones_like(alpha[:1]), alpha])
        return rgb, alpha, full

    @torch.no_grad()
    def greedy_select(self, x, cols, masks, bkg, occ) -> torch.Tensor:
        """Algorithm 1: sprite index per layer [L,B], each layer in turn taking the candidate of least
        error + λ·[non-empty] with the others fixed, ``greedy_iters`` passes, starting from empty layers."""
        L, K, B = cols.shape[:3]
        cur_rgb, cur_a, full = self.with_background(
            bkg, torch.zeros_like(cols[:, 0]), torch.zeros_like(masks[:, 0]), occ
        )
        penalty = torch.full((K,), self.cfg.lambda_empty, device=x.device)
        if self.cfg.add_empty_sprite:
            penalty[-1] = 0
            if self.frozen:  # the empty sprite is not offered while the sprites are frozen (official)
                penalty[-1] = math.inf
        sel = torch.zeros(L, B, dtype=torch.long, device=x.device)
        occ_k = full.repeat(K, 1, 1)
        for _ in range(self.cfg.greedy_iters):
            for lay in range(L):
                rgb = cur_rgb[:, None].expand(-1, K, -1, -1, -1, -1).clone()
                a = cur_a[:, None].expand(-1, K, -1, -1, -1, -1).clone()
                rgb[lay + 1], a[lay + 1] = cols[lay], masks[lay]
                img, _ = composite(rgb.flatten(1, 2), a.flatten(1, 2), occ_k)
                err = (img.view(K, B, -1) - x.reshape(1, B, -1)).pow(2).mean(2) + penalty[:, None]
                sel[lay] = err.argmin(0)
                idx = torch.arange(B, device=x.device)
                cur_rgb[lay + 1], cur_a[lay + 1] = cols[lay, sel[lay], idx], masks[lay, sel[lay], idx]
        return sel

    def selected(self, cols, masks, sel):
        idx = torch.arange(sel.shape[1], device=sel.device)
        return torch.stack([cols[lay, sel[lay], idx] for lay in range(self.L)]), torch.stack(
            [masks[lay, sel[lay], idx] for lay in range(self.L)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. (5) on a batch: mean squared error of the greedy composition (+ λ · mean non-empty count,
        which has no gradient). Counts the selections for the reassignment."""
        x = x.float()
        cols, masks, bkg, occ = self.candidates(x)
        sel = self.greedy_select(x, cols, masks, bkg, occ)
        rgb, a = self.selected(cols, masks, sel)
        img, _ = composite(*self.with_background(bkg, rgb, a, occ))
        with torch.no_grad():
            self.usage += torch.bincount(sel.flatten(), minlength=self.K).to(self.usage.dtype)
            nonempty = (sel != self.K - 1).float() if self.cfg.add_empty_sprite else torch.ones_like(sel, dtype=x.dtype)
        return F.mse_loss(img, x) + self.cfg.lambda_empty * nonempty.sum(0).mean()

    @torch.no_grad()
    def infer(self, x: torch.Tensor, to_layer: bool = False) -> dict:
        """Inference (eval mode): selections, instance ids (layer l -> id l, background 0), recon, soft masks."""
        x = x.float()
        cols, masks, bkg, occ = self.candidates(x)
        cols, masks, bkg = cols.clamp(0, 1), masks.clamp(0, 1), bkg.clamp(0, 1)
        sel = self.greedy_select(x, cols, masks, bkg, occ)
        rgb, a = self.selected(cols, masks, sel)
        recon, vis = composite(*self.with_background(bkg, rgb, a, occ))
        # instance labels from hard masks and hard occlusion, as the official pred_instance_labels
        _, hard = composite(*self.with_background(bkg, rgb, (a > 0.5).float(), (occ > 0.5).float()))
        ids = hard[:, :, 0].argmax(0)  # [B,H,W]: 0 background, l the l-th layer
        if to_layer:
            err = (rgb - x[None]).pow(2).sum(2)  # [L,B,H,W]
            if self.cfg.add_empty_sprite:
                err = err.masked_fill((sel == self.K - 1)[..., None, None], math.inf)
            nearest = err.argmin(0) + 1
            ok = torch.isfinite(err.min(0).values)
            ids = torch.where((ids == 0) & ok, nearest, ids)
        return {"sel": sel, "ids": ids, "recon": recon.clamp(0, 1), "soft": vis[:, :, 0].transpose(0, 1)}

    def decompose(self, x: torch.Tensor):
        out = self.infer(x)
        return out["recon"], out["soft"]

    # ---- reassignment
    def sprite_params(self) -> list[nn.Parameter]:
        return [self.proto, self.mask] + ([self.bkg] if self.cfg.n_backgrounds else [])

    @torch.no_grad()
    def reassign(self, opt: torch.optim.Optimizer | None = None) -> list[int]:
        """Restart every sprite chosen by fewer than ``reassign_threshold / n_sprites`` of the layer
        selections since the last check from the most used one (sprite, mask, per-sprite heads and their
        Adam moments; prototype copied with noise 1e-4, as the official ``restart_branch_from``). With an
        empty sprite, usage is relative to the most used non-empty sprite (official). Resets the counts."""
        n = self.cfg.n_sprites
        counts = self.usage[:n].clone()
        self.usage.zero_()
        if counts.sum() == 0:
            return []
        prop = counts / counts.max() if self.cfg.add_empty_sprite else counts / counts.sum()
        src = int(counts.argmax())
        low = [i for i in range(n) if prop[i] < self.cfg.reassign_threshold / n]
        for i in low + ([src] if low else []):
            self._copy_sprite(src, i, opt)
        return low

    def _copy_sprite(self, j: int, i: int, opt) -> None:
        self.proto[i] = self.proto[j] + 1e-4 * torch.randn_like(self.proto[j])
        self.mask[i] = self.mask[j]
        for p in (self.proto, self.mask):
            st = opt.state.get(p) if opt is not None else None
            if st:
                for key in ("exp_avg", "exp_avg_sq", "square_avg"):
                    if key in st:
                        st[key][i] = st[key][j]
        if i == j:
            return
        for lay in range(self.L):
            hi, hj = self.sprite_heads[lay * self.K + i], self.sprite_heads[lay * self.K + j]
            for pi, pj in zip(hi.parameters(), hj.parameters()):
                pi.copy_(pj)
                if opt is not None and pj in opt.state and pi in opt.state:
                    for key, v in opt.state[pj].items():
                        if torch.is_tensor(v) and key != "step":
                            opt.state[pi][key].copy_(v)


# ------------------------------------------------------------------------------------------- trainer
class _Factor:
    """Learning-rate factor: ×``factor`` from step ``at`` on (a picklable LambdaLR entry)."""

    def __init__(self, at: int | None, factor: float):
        self.at, self.factor = at, factor

    def __call__(self, step: int) -> float:
        return self.factor if self.at is not None and step >= self.at else 1.0


class DTITrainer(Trainer):
    """The shared trainer with DTI-Sprites' optimiser (weight decay and the lr drop on the networks only),
    its step-indexed curriculum (frozen sprites, sprite transforms switched on) and the reassignment."""

    def epoch_step(self, epochs: float) -> int:
        return int(round(epochs * self.model.cfg.steps_per_epoch * self.sched_scale))

    def build_optimizer(self, params, s):
        m: DTISpritesModel = self.model
        sprite_ids = {id(p) for p in m.sprite_params()}
        sprites = [p for p in params if id(p) in sprite_ids]
        nets = [p for p in params if id(p) not in sprite_ids]
        c = m.cfg
        opt = torch.optim.Adam(
            [{"params": nets, "weight_decay": c.weight_decay}, {"params": sprites, "weight_decay": 0.0}],
            lr=s.lr,
            betas=tuple(s.betas),
            eps=s.eps,
        )
        drop = None if c.lr_drop_epoch is None else self.epoch_step(c.lr_drop_epoch)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, [_Factor(drop, c.lr_drop_factor), _Factor(None, 1.0)])

    def stage_at(self, step: int) -> dict:
        c = self.model.cfg
        starts = c.sprite_curriculum or (0,) * len(c.sprite_transforms)
        return {
            "frozen": step < self.epoch_step(c.freeze_sprite_epochs),
            "sprite_active": tuple(step >= self.epoch_step(e) for e in starts),
        }

    def apply_settings(self, settings: Mapping[str, Any]) -> None:
        self.model.frozen = bool(settings["frozen"])
        self.model.sprite_active = list(settings["sprite_active"])

    def one_step(self, x: torch.Tensor) -> torch.Tensor:
        loss = super().one_step(x)
        m: DTISpritesModel = self.model
        if (self.step + 1) % m.cfg.check_cluster_interval == 0:
            if m.frozen:
                m.usage.zero_()
            else:
                moved = m.reassign(self.opt)
                if moved:
                    self.info.setdefault("reassigned", []).append({"step": self.step + 1, "sprites": moved})
        return loss


@register_method("dti_sprites", kinds={"image", "colour", "binary"}, config=DTISpritesConfig)
class DTISprites(LearnedImageMethod):
    """DTI-Sprites. Masks: layer l -> id l (1..L, stable order), background 0; ``classes[b, l]`` = 1 + the
    sprite index of layer l (background 0; the empty sprite K + 1, which has no pixels); ``recon``."""

    dataset_settings = DATASET_SETTINGS

    def n_layers(self) -> int:
        return int(self.config.n_layers or self.info.max_objects or 1)

    def num_slots(self) -> int:
        return self.n_layers() + 1

    def build_model(self) -> nn.Module:
        _, h, w, c = self.info.shape
        return DTISpritesModel(self.config, self.n_layers(), (h, w), c)

    def fit(self, train, val, ctx: FitContext) -> None:
        ctx.info["assign_background_to_nearest_layer"] = bool(self.config.assign_background_to_nearest_layer)
        ctx.info["occlusion"] = "predicted" if self.config.pred_occlusion else "fixed back-to-front"
        super().fit(train, val, ctx)

    def make_trainer(self, train, val, ctx: FitContext, device: torch.device) -> Trainer:
        holder: dict = {}
        tr = DTITrainer(self.model, self.config, train, val, ctx, device, curriculum=lambda s: holder["t"].stage_at(s))
        holder["t"] = tr
        return tr

    def predict(self, batch: Mapping[str, Any]) -> Prediction:
        if self.model is None:
            raise RuntimeError(f"{self.name}: predict called before fit")
        video = batch["video"]
        if not isinstance(video, torch.Tensor):
            video = torch.as_tensor(np.asarray(video))
        if video.ndim != 5 or video.dtype != torch.uint8:
            raise ValueError(f"batch['video'] must be uint8 [B,T,H,W,C], got {video.dtype} {tuple(video.shape)}")
        b, t, h, w, c = video.shape
        frames = video.reshape(b * t, h, w, c)
        device = next(self.model.parameters()).device
        was = self.model.training
        self.model.eval()
        ids, recons, classes, softs = [], [], [], []
        try:
            bs = self.config.predict_batch_size
            for lo in range(0, frames.shape[0], bs):
                x = frames[lo : lo + bs].to(device).permute(0, 3, 1, 2).float() / 255.0
                out = self.model.infer(x, to_layer=self.config.assign_background_to_nearest_layer)
                ids.append(out["ids"].cpu())
                recons.append(out["recon"].cpu())
                softs.append(out["soft"].cpu())
                cls = torch.zeros(x.shape[0], self.model.L + 1, dtype=torch.long)
                cls[:, 1:] = out["sel"].t().cpu() + 1
                classes.append(cls)
        finally:
            self.model.train(was)
        k = self.model.L + 1
        return Prediction(
            masks=torch.cat(ids).reshape(b, t, h, w),
            recon=torch.cat(recons).permute(0, 2, 3, 1).reshape(b, t, h, w, c),
            soft_masks=torch.cat(softs).reshape(b, t, k, h, w),
            classes=torch.cat(classes).reshape(b, t, k) if t > 1 else torch.cat(classes).reshape(b, k),
            background_ids=(0,),
        )


__all__ = ["DTISprites", "DTISpritesConfig", "DTISpritesModel", "DATASET_SETTINGS", "composite", "softclip"]
