"""Shared neural-network blocks of the learned image baselines.

Slot Attention, MONet and IODINE all decode each slot with a *spatial broadcast decoder*
(Watters et al. 2019): the latent is tiled over an image grid, coordinate features are added,
and a stride-1 CNN maps it to per-slot colour means and one mask logit. The pieces here are
that decoder, the coordinate features of each paper, CNN encoders and mixture helpers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def linear_grid(height: int, width: int, device=None, dtype=None) -> torch.Tensor:
    """Coordinates in [0, 1], shape [H, W, 2] as (row, column)."""
    ys = torch.linspace(0.0, 1.0, height, device=device, dtype=dtype)
    xs = torch.linspace(0.0, 1.0, width, device=device, dtype=dtype)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1)


def slot_attention_grid(height: int, width: int, device=None) -> torch.Tensor:
    """The 4-channel grid of the official Slot Attention code: [y, x, 1-y, 1-x], shape [H, W, 4]."""
    g = linear_grid(height, width, device=device)
    return torch.cat([g, 1.0 - g], dim=-1)


def coord_channels(height: int, width: int, kind: str = "linear", freqs: int = 0, device=None) -> torch.Tensor:
    """Coordinate channels [C, H, W] for broadcast decoders and IODINE's refinement inputs.

    ``linear``: (y, x) in [-1, 1] (2 channels), the ``coord_type="linear"`` channels of the IODINE code
    (``deepmind-research:iodine/modules/networks.py`` L247-252, ``iodine.py`` L595-600) and MONet's decoder.
    ``cos``: the IODINE code's cosine basis (``networks.py`` L253-261, ``iodine.py`` L601-611): with
    u, v = linspace(0, pi) over columns and rows and frequencies f = 0..freqs-1, the products
    ``cos(f_x u) * cos(f_y v)`` for every (f_x, f_y) pair except the constant (0, 0): ``freqs**2 - 1``
    channels (8 for 3 frequencies).
    """
    if kind == "linear":
        return linear_grid(height, width, device=device).permute(2, 0, 1) * 2.0 - 1.0
    if kind == "cos":
        if freqs < 1:
            raise ValueError(f"freqs must be >= 1 for cos coordinates, got {freqs}")
        f = torch.arange(freqs, device=device, dtype=torch.float32)
        u = torch.linspace(0.0, math.pi, width, device=device)
        v = torch.linspace(0.0, math.pi, height, device=device)
        bx = torch.cos(u[:, None] * f[None, :])  # [W, F] (f_x)
        by = torch.cos(v[:, None] * f[None, :])  # [H, F] (f_y)
        basis = bx[None, :, :, None] * by[:, None, None, :]  # [H, W, F_x, F_y], channel f_x * F + f_y
        return basis.reshape(height, width, freqs * freqs)[..., 1:].permute(2, 0, 1).contiguous()
    raise ValueError(f"coordinate kind must be 'linear' or 'cos', got {kind!r}")


class SoftPositionEmbed(nn.Module):
    """Adds a learned linear projection of the 4-channel grid to channels-last features [B,H,W,D]."""

    def __init__(self, hidden: int, resolution: tuple[int, int]):
        super().__init__()
        self.proj = nn.Linear(4, hidden)
        self.register_buffer("grid", slot_attention_grid(*resolution), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj(self.grid.to(x.dtype))


def conv_stack(
    in_ch: int,
    channels: Sequence[int],
    kernel: int,
    act: type[nn.Module] = nn.ReLU,
    stride: int = 1,
    padding: int | None = None,
) -> nn.Sequential:
    """Conv layers each followed by ``act``; 'same' padding by default."""
    pad = kernel // 2 if padding is None else padding
    layers: list[nn.Module] = []
    c = in_ch
    for ch in channels:
        layers += [nn.Conv2d(c, ch, kernel, stride=stride, padding=pad), act()]
        c = ch
    return nn.Sequential(*layers)


class BroadcastDecoder(nn.Module):
    """Spatial broadcast decoder: latent [N, D] -> [N, out_ch, H, W].

    ``coords`` picks the coordinate features: ``"sa"`` adds the learned Slot Attention position
    embedding to the tiled latent, ``"linear"``/``"cos"`` concatenate fixed coordinate channels
    (MONet / IODINE). ``pad`` broadcasts to a grid of (H + 2 pad, W + 2 pad) that the convolutions
    shrink back to H x W: ``conv_padding`` (hidden layers) and ``out_padding`` (output layer) default
    to 'same' padding without ``pad`` and to none with it (MONet's decoder, Burgess et al. 2019 App. B.1);
    EfficientMORL's Slot Attention decoder uses ``pad=3`` with conv5 padding 1 and conv3 padding 1.
    """

    def __init__(
        self,
        latent: int,
        out_ch: int,
        resolution: tuple[int, int],
        hidden: Sequence[int],
        kernel: int,
        out_kernel: int,
        act: type[nn.Module] = nn.ReLU,
        coords: str = "linear",
        freqs: int = 0,
        pad: int = 0,
        conv_padding: int | None = None,
        out_padding: int | None = None,
    ):
        super().__init__()
        self.h, self.w = resolution
        self.coords = coords
        self.pad = pad
        gh, gw = self.h + 2 * pad, self.w + 2 * pad
        if coords == "sa":
            self.pos = SoftPositionEmbed(latent, (gh, gw))
            in_ch = latent
        else:
            self.register_buffer("grid", coord_channels(gh, gw, coords, freqs), persistent=False)
            in_ch = latent + self.grid.shape[0]
        conv_pad = (0 if pad else kernel // 2) if conv_padding is None else conv_padding
        out_pad = (0 if pad else out_kernel // 2) if out_padding is None else out_padding
        shrink = len(hidden) * (kernel - 1 - 2 * conv_pad) + (out_kernel - 1 - 2 * out_pad)
        if shrink != 2 * pad:
            raise ValueError(
                f"pad={pad}: {len(hidden)} convs of kernel {kernel} (padding {conv_pad}) and an output "
                f"conv of kernel {out_kernel} (padding {out_pad}) shrink the grid by {shrink}, "
                f"not {2 * pad}"
            )
        layers: list[nn.Module] = []
        c = in_ch
        for ch in hidden:
            layers += [nn.Conv2d(c, ch, kernel, padding=conv_pad), act()]
            c = ch
        layers.append(nn.Conv2d(c, out_ch, out_kernel, padding=out_pad))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, d = z.shape
        gh, gw = self.h + 2 * self.pad, self.w + 2 * self.pad
        if self.coords == "sa":
            x = self.pos(z.view(n, 1, 1, d).expand(n, gh, gw, d)).permute(0, 3, 1, 2)
        else:
            tiled = z.view(n, d, 1, 1).expand(n, d, gh, gw)
            x = torch.cat([tiled, self.grid.to(z.dtype).expand(n, -1, -1, -1)], dim=1)
        return self.net(x.contiguous(memory_format=torch.channels_last))


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """Elementwise log N(x; mean, sigma^2)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    return -0.5 * ((x - mean) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)


def logistic_log_prob(x: torch.Tensor, mean: torch.Tensor, scale: float) -> torch.Tensor:
    """Elementwise log density of a logistic distribution (IODINE code's pixel likelihood)."""
    u = (x - mean) / scale
    return -u - math.log(scale) - 2.0 * F.softplus(-u)


def kl_normal_std(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, 1)) summed over the last dim."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)


def to_unit(video_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [..., H, W, C] -> float [N, C, H, W] in [0, 1] (frames of any leading dims flattened)."""
    h, w, c = video_uint8.shape[-3:]
    return video_uint8.reshape(-1, h, w, c).permute(0, 3, 1, 2).float().div_(255.0)
