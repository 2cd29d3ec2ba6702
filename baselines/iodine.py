"""IODINE (Greff et al. 2019): iterative amortised inference in a K-slot spatial mixture VAE.

Seed 001 §2 and App. C; where the paper text and the official code differ, ocbench follows the code,
``google-deepmind/deepmind-research:iodine/`` (TF1 + dm-sonnet 1.35, ``iodine/requirements.txt``), read at
commit f5de0ed. Files below are ``configurations.py`` (cfg), ``modules/iodine.py`` (io),
``modules/distributions.py`` (dist), ``modules/networks.py`` (net), ``modules/refinement.py`` (ref).

Matched to the code:

- **refinement steps.** ``num_iters = 5`` refinements (cfg L136/L261) **plus a final decode** (io L240-263 loop,
  then L167-175): 6 decodes, 6 losses, weighted ``linspace(0, 1, num_iters + 1)`` (io L466-468, so the first
  loss has weight 0). Each loss is ``mean_b(-log p(x|z)) + mean_b(sum_k KL)`` (io L177-188, L245-247).
- **latent.** lambda = (loc, raw scale), ``scale="var"``, ``scale_act="softplus"`` (cfg L206-211):
  std = sqrt(softplus(raw)) (dist L141-146). The prior is ``latent_dist`` fed zeros (io L146, dist L51-53),
  i.e. N(0, softplus(0)) = N(0, ln 2), not N(0, 1); the KL is analytic (io L615-616). lambda^(1) is a
  trained parameter (io L448-458) with TF1's default ``get_variable`` initializer, glorot-uniform over a
  [2z] vector: U(-sqrt(3 / 2z), +sqrt(3 / 2z)). z is sampled at every step (io L254), also by ``predict``
  (from a fixed-seed generator: the slots share lambda^(1), so only the samples break their symmetry).
- **decoder.** Broadcast decoder (net L162-240): the latent gets a constant 5.0 channel appended ("legacy",
  io L270), is tiled, gets **2 linear coordinate channels** in [-1, 1] (net L247-252; pixel decoder
  ``coord_type="linear"``, cfg L179/L295), 4 x conv5 32 ELU + conv5 to 1 + C, no final activation (cfg
  L288-294). Channel 0 is the mask logit (decoder.py L39-40); the pixel means have **no squashing**
  (``loc_act=None``, dist L106, L142); masks = softmax over slots (dist L198-202).
- **likelihood.** Mixture of logistics with fixed scale 0.03 (cfg L330-344), independent over channels
  (dist L160). ``likelihood="gaussian"`` (with ``pixel_scale=0.1``) gives the paper text's sigma (App. C).
- **refinement inputs** (io L31-53, L502-573; the configs keep every default input): image (C), means
  (C, "components"), mask logits (1, "mask"), softmax masks (1, "pred_mask"), mask posterior
  p(x|mu_k) / (sum_j p(x|mu_j) + 1e-6) (1, not weighted by the masks: io L497-500 and App. C; computed in
  log space, so it does not underflow where the code's float32 densities would), LN+SG gradient of the
  loss w.r.t. the means (C), LN+SG gradient **w.r.t. the mask logits** (1; io L505 differentiates
  ``out_params.mask``, the logits), LN+SG log p(x|z) (1), LN+SG counterfactual log p(x|z) - log p(x|z_{i!=k})
  (1, io L510-519), the constant **capacity** channel 0.5 (1, io L542-544) and the refinement coordinates,
  ``coord_type="cos"`` with 3 frequencies: 8 channels (cfg L282-283/L166-167, io L601-611). For RGB that
  is 3+3+1+1+1+3+1+1+1+1+8 = 24 channels (the paper's App. C table lists 17: two linear coordinates and
  no capacity channel). Flat inputs: lambda, LN+SG grad_lambda L and the constant ``flat_capacity`` 0.5
  (io L549-555). Gradients come from ``tf.gradients`` of the iteration's loss (io L505): no graph through
  them (stop-gradient, io L52-53, L565-566); the other inputs keep their gradients (posterior included).
- **layer norms** on exactly ``dcomponents, dmask, dzp, log_prob, counterfactual`` (io L48-50): sonnet's
  ``snt.LayerNorm`` (io L149-152, L575-590) normalises each sample over all non-batch dims and has a
  learned scale and offset per channel (dm-sonnet 1.35 ``layer_norm.py``: ``params_shape =
  inputs.get_shape()[-1:]``, eps 1e-5); log p(x|z) is normalised per image.
- **refinement network** (cfg L299-322/L182-205, ref L50-107, net L25-87): conv5 32 stride 2 x 3, ELU after
  each (``activate_final=True``), mean over space, MLP [128] (one linear layer, no final activation:
  snt.nets.MLP's ``activate_final=False``), concatenation with the flat inputs, LSTM 128 (none for
  Tetrominoes, cfg L317) with sonnet's forget-gate bias 1.0, and ``ResHead``: lambda + Linear(h) (ref L90-107).
- **initialisation.** Sonnet's defaults: linear and conv weights truncated-normal with std 1/sqrt(fan_in),
  zero biases; LSTM weights std 1/sqrt(input + hidden).
- **optimiser.** Adam lr 3e-4 (x sqrt(B / paper batch) in cfg L143/L268), beta1 0.95, exponential decay
  x0.1 per 1M steps (cfg L357-369), global-norm clip 5.0 (main.py L81-83), 1M steps (main.py L55).

Documented, not matched:

- SAME padding of the stride-2 refinement convs: TF pads even-sized inputs asymmetrically (one more pixel
  bottom/right), PyTorch ``padding=k//2`` symmetrically; the output sizes agree, the sampling grid of the
  strided convs is shifted by one pixel.
- Data: none of the code's data handling. (Its Multi-dSprites config asks for ``min_num_objs`` /
  ``max_num_objs`` 3 (cfg L154-157), but ``IODINEDataset`` takes ``min_num_objects`` / ``max_num_objects``
  (``modules/data.py`` L36-47), so the keys land in ``**kwargs`` and no scene is filtered.)

**Precision.** Under the trainer's bf16 autocast (CUDA) the decoder, the pixel likelihood, the KL, the
loss of each step and every gradient input are computed in float32 inside ``torch.autocast(enabled=False)``
(a bf16 decoder output is quantised to ~0.004 at 1.0, a seventh of the 0.03 logistic scale; sonnet's
LayerNorm itself refuses bf16 inputs). Only the refinement network (its convs, MLP, LSTM and head) runs
under autocast. Measured on the CPU (Multi-dSprites model, 64², batch 4 after 15 Adam steps, same samples,
against an all-float32 run): with the decoder under bf16 the gradient inputs were off by 2-6 % (relative L2:
dcomponents 3.3e-2, dmask 3.5e-2, counterfactual 3.4e-2, posterior 2.0e-2, dzp 1.6e-2) already at the first
step and the step losses by 6e-4..2e-3; with this float32 path the first step is exact and the later ones
differ by 1e-3..1e-2 (from the bf16 refinement network alone). On CUDA the trainer's TF32 setting still
applies to these float32 convs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import ModelSlots, config_for, register_method
from .nn import BroadcastDecoder, coord_channels, gaussian_log_prob, logistic_log_prob
from .trainer import LearnedImageMethod, TrainSettings

PRIOR_VAR = math.log(2.0)  # softplus(0): the code's prior is latent_dist(zeros) with scale="var" (io L146)
DECODER_CONSTANT = 5.0  # the constant "legacy" latent channel (io L270)
CAPACITY = 0.5  # the constant "capacity" / "flat_capacity" inputs (io L542-544, L554-555)


@dataclasses.dataclass
class IODINEConfig(TrainSettings):
    """Defaults = the Multi-dSprites model, ``configurations.py::multi_dsprites`` (cfg L133-255);
    :data:`DATASET_SETTINGS` gives the others. The paper batch is kept on one device, so the code's lr rule
    3e-4 * sqrt(B / paper batch) gives 3e-4."""

    num_slots: int | None = None  # None: max objects + 1 (background); cfg L135 (6) / L260 (4)
    latent: int = 16  # n_z, cfg L134 (Tetrominoes 32, L259)
    # num_iters (cfg L136/L261): refinements; the model decodes and scores refinement_steps + 1 times
    refinement_steps: int = 5
    decoder_channels: int = 32  # cfg L174 / L290
    decoder_layers: int = 4  # cfg L174 / L290: [32, 32, 32, 32, None]
    decoder_kernel: int = 5  # cfg L175 / L291
    coord_freqs: int = 3  # refinement cos basis, cfg L166-167 / L282-283
    refine_channels: int = 32  # cfg L188 / L305
    refine_layers: int = 3  # cfg L188 / L305: [32, 32, 32]
    refine_kernel: int = 5  # cfg L190 / L307, stride 2 (L189 / L306)
    refine_mlp: int = 128  # cfg L194 / L311
    lstm: int = 128  # cfg L200; 0: no LSTM (Tetrominoes, cfg L317)
    likelihood: str = "logistic"  # cfg L219-224 (logistic, fixed scale); "gaussian": paper App. C
    pixel_scale: float = 0.03  # cfg L223 / L341 (the gaussian sigma of App. C is 0.1)
    steps: int = 1_000_000  # main.py L55 stop_after_steps; App. C.1 "1M updates"
    batch_size: int = 128  # paper batch 8 x 16, cfg L139-142 (Tetrominoes 8 x 32, L264-267)
    lr: float = 3e-4  # cfg L143 / L268 at the paper batch
    betas: tuple[float, float] = (0.95, 0.999)  # beta1 cfg L254 / L368; beta2 TF default
    clip_norm: float | None = 5.0  # main.py L81-83
    decay_rate: float = 0.1  # cfg L252 / L366
    decay_steps: int = 1_000_000  # cfg L251 / L365
    compile: bool | None = False  # gradient inputs (autograd.grad in forward) break torch.compile graphs
    predict_batch_size: int = 128

    @classmethod
    def for_dataset(cls, dataset: str, variant: str | None = None) -> IODINEConfig:
        """The config :data:`DATASET_SETTINGS` gives (dataset, variant)."""
        return config_for(cls, DATASET_SETTINGS, dataset, variant)


# Per-dataset values. Datasets not in the papers get the Multi-dSprites model with K = max objects + 1 and
# batch 32 (the "*" row).
DATASET_SETTINGS = {
    "*": {"batch_size": 32},
    # Tetrominoes, cfg L258-369: K=4 (L260), n_z 32 (L259), no LSTM (L317), batch 8 x 32 (L264-267)
    "tetrominoes": {"num_slots": 4, "latent": 32, "lstm": 0, "batch_size": 256},
    # Multi-dSprites, cfg L133-255: K=6 (L135), n_z 16 (L134), LSTM 128 (L200), batch 8 x 16 (L139-142)
    "multi_dsprites": {"num_slots": 6, "latent": 16, "batch_size": 128},
    # not in the papers: 4 balls + background, as PROVIDE
    "bouncing_balls": {"num_slots": 5},
    # not in the papers: max6 -> 7, max12 -> 13 (max objects + background)
    "scattered_mnist": {"num_slots": 7},
    ("scattered_mnist", "max12"): {"num_slots": 13},
    "scattered_shapes": {"num_slots": 7},
    ("scattered_shapes", "max12"): {"num_slots": 13},
}


class SonnetLayerNorm(nn.Module):
    """``snt.LayerNorm`` (dm-sonnet 1.35): per sample over all non-batch dims, learned scale and offset per
    channel (dim 1 here, the last dim in the NHWC code), eps 1e-5. Always float32."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        y = F.layer_norm(x, x.shape[1:], eps=1e-5)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.weight.float().view(shape) + self.bias.float().view(shape)


def _sonnet_init_(model: nn.Module) -> None:
    """Sonnet 1 default initialisers: truncated normal (2 std) with std 1/sqrt(fan_in) for linear and conv
    weights, zero biases; LSTM gate weights with std 1/sqrt(input + hidden), zero biases, and the forget
    gate's constant +1 (``snt.LSTM(forget_bias=1.0)``) as its initial bias."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                std = 1.0 / math.sqrt(m.weight[0].numel())
                nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.LSTMCell):
                std = 1.0 / math.sqrt(m.input_size + m.hidden_size)
                for w in (m.weight_ih, m.weight_hh):
                    nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)
                m.bias_ih.zero_()
                m.bias_hh.zero_()
                m.bias_ih[m.hidden_size : 2 * m.hidden_size] = 1.0  # gates i, f, g, o


class IODINEModel(nn.Module):
    # the five inputs the code layer-normalises (io L48-50); see the module docstring for the rest
    LN_INPUTS = ("dcomponents", "dmask", "dzp", "log_prob", "counterfactual")

    def __init__(self, cfg: IODINEConfig, num_slots: int, resolution: tuple[int, int], channels: int):
        super().__init__()
        if cfg.likelihood not in ("logistic", "gaussian"):
            raise ValueError(f"likelihood must be 'logistic' or 'gaussian', got {cfg.likelihood!r}")
        if cfg.refinement_steps < 1:  # with none, linspace(0, 1, 1) = [0] would leave nothing to train
            raise ValueError(f"refinement_steps must be >= 1, got {cfg.refinement_steps}")
        self.cfg, self.k, self.c, self.z = cfg, num_slots, channels, cfg.latent
        h, w = resolution
        z = cfg.latent
        # lambda^(1): TF1 get_variable default (glorot uniform over a [2z] vector: fan_in = fan_out = 2z)
        bound = math.sqrt(6.0 / (4 * z))
        self.lambda0 = nn.Parameter(torch.empty(2 * z).uniform_(-bound, bound))
        self.decoder = BroadcastDecoder(
            z + 1,
            channels + 1,
            resolution,
            [cfg.decoder_channels] * cfg.decoder_layers,
            kernel=cfg.decoder_kernel,
            out_kernel=cfg.decoder_kernel,
            act=nn.ELU,
            coords="linear",
        )
        self.register_buffer("coords", coord_channels(h, w, "cos", cfg.coord_freqs), persistent=False)
        in_ch = self.refine_in_channels(channels, cfg.coord_freqs)
        r = cfg.refine_channels
        layers: list[nn.Module] = []
        c = in_ch
        for _ in range(cfg.refine_layers):
            layers += [nn.Conv2d(c, r, cfg.refine_kernel, stride=2, padding=cfg.refine_kernel // 2), nn.ELU()]
            c = r
        # mean pool, then snt.nets.MLP([128]) with activate_final=False: one linear layer, no activation
        self.refine_conv = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(r, cfg.refine_mlp))
        cat = cfg.refine_mlp + 4 * z + 1  # [features, dzp, flat_capacity, zp]
        self.lstm = nn.LSTMCell(cat, cfg.lstm) if cfg.lstm else None
        self.refine_out = nn.Linear(cfg.lstm or cat, 2 * z)  # ResHead
        self.norms = nn.ModuleDict(
            {
                "dcomponents": SonnetLayerNorm(channels),
                "dmask": SonnetLayerNorm(1),
                "dzp": SonnetLayerNorm(2 * z),
                "log_prob": SonnetLayerNorm(1),
                "counterfactual": SonnetLayerNorm(1),
            }
        )
        _sonnet_init_(self)
        self.loss_weights = np.linspace(0.0, 1.0, cfg.refinement_steps + 1).tolist()  # io L466-468

    def set_num_slots(self, k: int) -> None:
        """Use ``k`` slots from now on: every slot starts from the same lambda^(1) and is refined by the same
        network, decoded by the same decoder, so no weight depends on K; only the count changes."""
        self.k = int(k)

    @staticmethod
    def refine_in_channels(channels: int, freqs: int) -> int:
        """image, components, dcomponents (C each); mask, pred_mask, dmask, posterior, log_prob,
        counterfactual, capacity (1 each); the cos basis (freqs**2 - 1)."""
        return 3 * channels + 7 + freqs * freqs - 1

    # -- float32 part: decoder, likelihood, KL, loss of the step, gradient inputs --------------------------

    def _pixel_log_prob(self, x: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        if self.cfg.likelihood == "logistic":
            return logistic_log_prob(x, means, self.cfg.pixel_scale)
        return gaussian_log_prob(x, means, self.cfg.pixel_scale)

    def _score(
        self, x: torch.Tensor, lam: torch.Tensor, sample: bool, generator: torch.Generator | None = None
    ) -> dict:
        """Decode lambda [B,K,2z] and score x [B,C,H,W]; call with autocast disabled.

        ``sample=False`` decodes the posterior means: every slot starts from the same lambda^(1), so without
        sampling all slots stay identical (for tests of the arithmetic only; ``decompose`` samples).
        """
        b, c, h, w = x.shape
        k, zdim = self.k, self.z
        loc, raw = lam[..., :zdim], lam[..., zdim:]
        scale = torch.sqrt(F.softplus(raw))  # scale="var" (dist L141-146)
        if sample:
            noise = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
            zs = loc + scale * noise
        else:
            zs = loc
        zc = torch.cat([zs, zs.new_full((b, k, 1), DECODER_CONSTANT)], dim=-1).reshape(b * k, zdim + 1)
        out = self.decoder(zc).float().view(b, k, c + 1, h, w)
        logits, means = out[:, :, 0], out[:, :, 1:]  # channel 0 = mask logit (decoder.py L39-40)
        log_m = logits.log_softmax(dim=1)
        log_pk = self._pixel_log_prob(x.unsqueeze(1), means).sum(2)  # [B,K,H,W], independent over channels
        joint = log_m + log_pk
        log_px = torch.logsumexp(joint, dim=1)  # [B,H,W]
        re = -log_px.flatten(1).sum(1)  # [B]
        kl = 0.5 * math.log(PRIOR_VAR) - torch.log(scale) + (scale**2 + loc**2) / (2 * PRIOR_VAR) - 0.5
        loss = re.mean() + kl.sum(-1).sum(-1).mean()  # io L247 (and L177-186 per iteration)
        return {
            "means": means,
            "logits": logits,
            "log_m": log_m,
            "log_pk": log_pk,
            "joint": joint,
            "log_px": log_px,
            "loss": loss,
        }

    def _gradient_inputs(self, x: torch.Tensor, lam: torch.Tensor, s: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The refinement inputs (spatial [B*K, C_in, H, W], flat [B*K, 4z+1]), float32; autocast disabled."""
        b, c, h, w = x.shape
        k, zdim = self.k, self.z
        means, logits, log_m, log_pk, log_px = s["means"], s["logits"], s["log_m"], s["log_pk"], s["log_px"]
        # tf.gradients(loss, [zp, pixel, mask]) (io L505): first-order only, so stop-gradient by construction
        dzp, dcomp, dmask = torch.autograd.grad(s["loss"], [lam, means, logits], retain_graph=True)
        with torch.no_grad():
            eye = torch.eye(k, dtype=torch.bool, device=x.device).view(1, k, k, 1, 1)
            others = s["joint"].unsqueeze(1).expand(b, k, k, h, w).masked_fill(eye, float("-inf"))
            others_m = log_m.unsqueeze(1).expand(b, k, k, h, w).masked_fill(eye, float("-inf"))
            # log p(x | z_{i!=k}): the mixture without slot k, its masks renormalised (io L510-518)
            loo = torch.logsumexp(others, dim=2) - torch.logsumexp(others_m, dim=2)
            counterfactual = log_px.unsqueeze(1) - loo  # io L519
        n = b * k
        # p(x|mu_k) / (sum_j p(x|mu_j) + 1e-6) (io L497-500), in log space; keeps its gradient
        log_norm = torch.logaddexp(torch.logsumexp(log_pk, dim=1, keepdim=True), log_pk.new_tensor(math.log(1e-6)))
        posterior = (log_pk - log_norm).exp()
        norm = self.norms
        spatial = [
            x.unsqueeze(1).expand(b, k, c, h, w).reshape(n, c, h, w),  # image
            means.reshape(n, c, h, w),  # components
            norm["dcomponents"](dcomp.reshape(n, c, h, w)),
            logits.reshape(n, 1, h, w),  # mask
            log_m.exp().reshape(n, 1, h, w),  # pred_mask
            norm["dmask"](dmask.reshape(n, 1, h, w)),
            posterior.reshape(n, 1, h, w),
            norm["log_prob"](log_px.unsqueeze(1)).unsqueeze(1).expand(b, k, 1, h, w).reshape(n, 1, h, w),
            norm["counterfactual"](counterfactual.reshape(n, 1, h, w)),
            x.new_full((n, 1, h, w), CAPACITY),  # capacity
            self.coords.to(x.dtype).expand(n, -1, h, w),  # cos basis
        ]
        flat = [norm["dzp"](dzp.reshape(n, 2 * zdim)), x.new_full((n, 1), CAPACITY), lam.reshape(n, 2 * zdim)]
        return torch.cat(spatial, dim=1), torch.cat(flat, dim=1)

    # -- the unrolled inference -----------------------------------------------------------------------------

    def run(self, x: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None):
        """Unrolled inference: ``refinement_steps`` refinements and refinement_steps + 1 scored decodes.

        Returns (sum_t w_t L_t, final means [B,K,C,H,W], final log masks [B,K,H,W]);
        ``self.iteration_losses`` keeps the detached L_t of the last call (for monitoring and tests).
        """
        b = x.shape[0]
        dev = x.device.type
        x = x.float()
        lam = self.lambda0.float().view(1, 1, -1).expand(b, self.k, -1)
        state = None
        total = x.new_zeros(())
        self.iteration_losses: list[torch.Tensor] = []
        for t, weight in enumerate(self.loss_weights):
            if not lam.requires_grad:  # inference without parameter grads still needs d/d lambda
                lam = lam.detach().requires_grad_(True)
            with torch.autocast(device_type=dev, enabled=False):
                s = self._score(x, lam, sample, generator)
                total = total + weight * s["loss"]
                self.iteration_losses.append(s["loss"].detach())
                if t == len(self.loss_weights) - 1:
                    break  # the final decode (io L167-175) is scored, not refined
                spatial, flat = self._gradient_inputs(x, lam, s)
            hid = torch.cat([self.refine_conv(spatial), flat], dim=1)
            if self.lstm is not None:
                state = self.lstm(hid, state)
                hid = state[0]
            lam = lam + self.refine_out(hid).float().view(b, self.k, 2 * self.z)
        return total, s["means"], s["log_m"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x, sample=True)[0]

    def decompose(self, x: torch.Tensor):
        # z is sampled at every step, as in the code's evaluation (io L254, L164): the slots share lambda^(1),
        # and only the samples break their symmetry. A fixed-seed generator keeps predictions reproducible.
        gen = torch.Generator(device=x.device).manual_seed(0)
        with torch.enable_grad():  # the refinement inputs need gradients, also at test time
            _, means, log_m = self.run(x, sample=True, generator=gen)
        m = log_m.exp().detach()
        return (m.unsqueeze(2) * means.detach()).sum(1).clamp(0, 1), m


@register_method("iodine", kinds={"image", "colour", "binary"}, config=IODINEConfig)
class IODINE(ModelSlots, LearnedImageMethod):
    """IODINE; masks are the argmax of the last decode's mixture weights, ids 1..K (K may change at test time:
    ``set_eval_slots``)."""

    dataset_settings = DATASET_SETTINGS

    def build_model(self) -> nn.Module:
        _, h, w, c = self.info.shape
        return IODINEModel(self.config, self.num_slots(), (h, w), c)
