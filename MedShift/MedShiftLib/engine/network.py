"""The velocity network v(x, t, domain): a light U-Net for single-channel radiographs.

Layout (read top to bottom like the forward pass):
    patchify stem   space-to-depth by `patch_size` (e.g. 1x512x512 -> 64x64x64), then a 3x3 conv;
                    everything after runs at 1/patch_size resolution, which is what makes it cheap.
    encoder         per level: `blocks_per_level` residual blocks, then a strided-conv downsample.
    middle          residual block, self-attention, residual block (lowest resolution only).
    decoder         per level: upsample, concatenate the skip, residual blocks.
    head            norm, SiLU, zero-initialised conv to patch_size**2 channels, plus the patch skip;
                    depth-to-space.
    patch skip      a linear map from each input patch to its output patch, mixed from `patch_skip`
                    learned maps by gates that depend on t and the label (zero-initialised).

The stem keeps at least patch_size**2 channels (channels[0] >= patch_size**2): the velocity target
u = x1 - x0 holds full-resolution noise, which a head rebuilding a patch of patch_size**2 pixels from
fewer features cannot represent. Near t = 1 most of the velocity is a linear map of the input patch
(the noise to remove is x_t minus a smooth image); the patch skip gives the network that map directly,
per time and domain. docs/engine.md tells what was measured to come to both.

Normalisation: "pixel" (default) normalises over the channels at each position, like ConvNeXt/DiT;
"group" is torch's GroupNorm over channel groups and all positions (as in ADM). Pixel norm has no
statistics across space, so a tile is processed as the same pixels inside the whole image and tiled
translation agrees with one pass (docs/engine.md).

Conditioning: a sinusoidal embedding of t plus a learned embedding of the domain label, whose last slot
(index `num_domains`) is the "null" label used for classifier-free guidance. The sum drives a
scale/shift of every residual block's second norm (AdaGN). The output conv is zero-initialised, so
an untrained network predicts zero velocity. Fully convolutional: any H, W that are multiples of
`downsampling_factor` work.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NORMS = ("group", "pixel")
MAX_CHANNELS, MAX_DOMAINS = 4096, 4096


@dataclass(frozen=True)
class UNetConfig:
    """Architecture hyper-parameters; stored in every checkpoint."""

    num_domains: int
    patch_size: int = 4
    channels: tuple[int, ...] = (16, 32, 64, 128, 192)
    blocks_per_level: int = 1
    attention_heads: int = 4
    embedding_dim: int = 192
    norm_groups: int = 16
    norm: str = "pixel"
    dropout: float = 0.0
    patch_skip: int = 8

    def __post_init__(self) -> None:
        if self.num_domains < 1:
            raise ValueError("num_domains must be at least 1")
        if self.patch_size < 1 or not self.channels:
            raise ValueError("patch_size must be >= 1 and channels non-empty")
        for name, value, top in (("num_domains", self.num_domains, MAX_DOMAINS), ("patch_size", self.patch_size, 64),
                                 ("levels", len(self.channels), 8), ("channels", max(self.channels), MAX_CHANNELS),
                                 ("embedding_dim", self.embedding_dim, MAX_CHANNELS),
                                 ("blocks_per_level", self.blocks_per_level, 16), ("patch_skip", self.patch_skip, 256)):
            if value > top:  # bounds checked before any network is built (a hostile checkpoint allocates nothing)
                raise ValueError(f"{name} {value} is above the largest supported, {top}")
        if min(self.channels) < 1 or self.blocks_per_level < 1 or self.attention_heads < 1 or self.embedding_dim < 1:
            raise ValueError("channels, blocks_per_level, attention_heads and embedding_dim must be at least 1")
        if self.patch_skip < 0:
            raise ValueError("patch_skip must be >= 0 (0 turns the patch skip off)")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of: {', '.join(NORMS)}")
        if self.channels[-1] % self.attention_heads:
            raise ValueError(f"the last channel count {self.channels[-1]} must be a multiple of attention_heads")

    @property
    def downsampling_factor(self) -> int:
        """Image sides must be multiples of this."""
        return self.patch_size * 2 ** (len(self.channels) - 1)

    @property
    def null_label(self) -> int:
        """The label index meaning "no domain" (classifier-free guidance)."""
        return self.num_domains

    def to_dict(self) -> dict:
        """JSON-ready form."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        """Inverse of `to_dict`; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        d = dict(d)
        d.setdefault("patch_skip", 0)  # checkpoints written before the patch skip existed
        if "channels" in d:
            d["channels"] = tuple(int(c) for c in d["channels"])
        return cls(**d)


# Model sizes; "default" costs about 3.5 GFLOP per forward at 512 x 512, so the default translation's
# 8 evaluations stay under 30 GFLOP (Testing/test_velocity_unet.py; docs/benchmarks.md).
MODEL_PRESETS: dict[str, dict] = {
    "tiny": dict(patch_size=4, channels=(16, 32), blocks_per_level=1, embedding_dim=64, norm_groups=8),
    "small": dict(patch_size=4, channels=(16, 32, 64, 128), blocks_per_level=1, embedding_dim=128, norm_groups=16),
    "default": dict(patch_size=4, channels=(16, 32, 64, 128, 192), blocks_per_level=1, embedding_dim=192,
                    norm_groups=16),
    "large": dict(patch_size=8, channels=(64, 128, 192, 256), blocks_per_level=2, embedding_dim=256, norm_groups=32),
}


def config_from_preset(preset: str, num_domains: int) -> UNetConfig:
    """A named model size ("tiny", "small", "default", "large")."""
    if preset not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; choose one of: {', '.join(MODEL_PRESETS)}")
    return UNetConfig(num_domains=num_domains, **MODEL_PRESETS[preset])


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer-style embedding of times t in [0, 1] (scaled by 1000), shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


class PixelNorm(nn.Module):
    """Layer norm over the channels at each position (as ConvNeXt/DiT): no statistics across space,
    so a tile of an image is normalised exactly as the same pixels in the whole image."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], self.weight, self.bias, eps=1e-6)
        return x.permute(0, 3, 1, 2)


def _norm(channels: int, config: UNetConfig) -> nn.Module:
    if config.norm == "pixel":
        return PixelNorm(channels)
    return nn.GroupNorm(math.gcd(channels, config.norm_groups), channels)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the conditioning as scale/shift of the second norm."""

    def __init__(self, in_ch: int, out_ch: int, config: UNetConfig) -> None:
        super().__init__()
        self.norm1 = _norm(in_ch, config)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(config.embedding_dim, 2 * out_ch)
        self.norm2 = _norm(out_ch, config)
        self.dropout = nn.Dropout(config.dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions (used only at the lowest resolution)."""

    def __init__(self, channels: int, config: UNetConfig) -> None:
        super().__init__()
        self.heads = config.attention_heads
        self.norm = _norm(channels, config)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        a = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class VelocityUNet(nn.Module):
    """v(x, t, label): velocity of the flow at images x (B,1,H,W), times t (B,), domain labels (B,)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = cfg = config
        emb_dim = cfg.embedding_dim
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_embedding = nn.Embedding(cfg.num_domains + 1, emb_dim)
        self.stem = nn.Conv2d(cfg.patch_size**2, cfg.channels[0], 3, padding=1)

        self.encoder = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        skip_channels = []
        ch = cfg.channels[0]
        for level, level_ch in enumerate(cfg.channels):
            blocks = nn.ModuleList()
            for _ in range(cfg.blocks_per_level):
                blocks.append(ResidualBlock(ch, level_ch, cfg))
                ch = level_ch
            self.encoder.append(blocks)
            skip_channels.append(ch)
            if level < len(cfg.channels) - 1:
                self.downsamplers.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))

        self.middle_in = ResidualBlock(ch, ch, cfg)
        self.middle_attention = SelfAttention(ch, cfg)
        self.middle_out = ResidualBlock(ch, ch, cfg)

        self.decoder = nn.ModuleList()
        self.upsamplers = nn.ModuleList()
        for level in reversed(range(len(cfg.channels))):
            level_ch = cfg.channels[level]
            blocks = nn.ModuleList()
            for i in range(cfg.blocks_per_level):
                in_ch = ch + skip_channels[level] if i == 0 else ch
                blocks.append(ResidualBlock(in_ch, level_ch, cfg))
                ch = level_ch
            self.decoder.append(blocks)
            if level > 0:
                self.upsamplers.append(nn.Conv2d(ch, ch, 3, padding=1))

        self.head_norm = _norm(ch, cfg)
        self.head = nn.Conv2d(ch, cfg.patch_size**2, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.patch_skip = self.patch_skip_gates = None
        if cfg.patch_skip:
            pixels = cfg.patch_size**2
            self.patch_skip = nn.Conv2d(pixels, pixels * cfg.patch_skip, 1)
            self.patch_skip_gates = nn.Linear(emb_dim, cfg.patch_skip)
            nn.init.zeros_(self.patch_skip.weight)
            nn.init.zeros_(self.patch_skip.bias)

    def embed(self, t: Tensor, labels: Tensor) -> Tensor:
        """Conditioning vector from time and domain label."""
        return self.time_mlp(sinusoidal_embedding(t, self.config.embedding_dim)) + self.label_embedding(labels)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor) -> Tensor:
        factor = self.config.downsampling_factor
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"image sides {tuple(x.shape[-2:])} must be multiples of {factor}")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.embed(t.to(x.device), labels.to(x.device))
        patches = F.pixel_unshuffle(x, self.config.patch_size)
        h = self.stem(patches)
        skips = []
        for level, blocks in enumerate(self.encoder):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            if level < len(self.downsamplers):
                h = self.downsamplers[level](h)
        h = self.middle_out(self.middle_attention(self.middle_in(h, emb)), emb)
        for i, blocks in enumerate(self.decoder):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, emb)
            if i < len(self.upsamplers):
                h = self.upsamplers[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        out = self.head(F.silu(self.head_norm(h)))
        if self.patch_skip is not None:  # sum_k gate_k (W_k patches + b_k), as one 1x1 map per image
            b, pixels = out.shape[:2]
            gates = self.patch_skip_gates(F.silu(emb)).to(out.dtype)
            weights = self.patch_skip.weight.view(self.config.patch_skip, pixels, pixels)
            biases = self.patch_skip.bias.view(self.config.patch_skip, pixels)
            mixed = torch.einsum("bk,koi->boi", gates, weights)
            skip = torch.bmm(mixed, patches.reshape(b, pixels, -1)).view(out.shape)
            out = out + skip + (gates @ biases)[:, :, None, None]
        return F.pixel_shuffle(out, self.config.patch_size)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
