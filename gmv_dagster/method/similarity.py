"""A learned similarity for attribution: a small CNN trained self-supervised on the training set.

Positives are two augmentations of one training image; the augmentations model how a
generator's output departs from the image it copies: translation / crop of a few percent,
scale, small rotation, brightness / contrast / saturation / colour gains, blur, Gaussian
noise, JPEG (an 8x8-DCT quantisation in torch). The loss is InfoNCE (NT-Xent) over the
batch. Everything random is drawn from one seeded `torch.Generator` on the CPU, so the same
images, params and seed give bit-identical weights (on one machine / torch build, with the
thread count fixed by `SimilarityParams.num_threads`).

Colour-aware: the model takes 3 channels when any training image has 3 channels that differ,
1 (grey) otherwise. Embeddings are L2-normalised float32 (`dim` columns), so cosine
distance = 1 - dot product.

Preprocessing matches the project's `to_tensor_batch` exactly (PIL convert to L / RGB,
bilinear resize to `image_size`, / 255), so the module plugs into an `Embedder` whose
`features` is `model.features` (see `embedder_kwargs`). Imports only the common helpers (no Dagster).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..common.files import sha256_file
from ..common.sampling import chunks
from ..common.tensors import has_colour, to_tensor_batch

__all__ = [
    "SimilarityModel",
    "SimilarityNet",
    "SimilarityParams",
    "augment",
    "detect_channels",
    "embedder_kwargs",
    "load_similarity",
    "state_dict_sha256",
    "to_tensor_batch",
    "train_similarity",
]

FORMAT = "gmv-similarity/1"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SimilarityParams:
    """Model, training and augmentation settings; every default chosen on two domains (see bench/attribution.py).

    Training runs exactly `steps` optimiser steps (a fixed amount of work, hence deterministic);
    `max_seconds`, if set, stops it early and makes the weights depend on the machine's speed.
    Augmentation strengths: shift is a fraction of the image side, scale a relative change,
    rotation in degrees, brightness / noise in units of the [0, 1] range, contrast / saturation /
    colour relative; blur_p / jpeg_p are per-image probabilities.
    """

    image_size: int = 32
    dim: int = 128
    width: int = 24  # channels of the first conv layer; then 2x, 4x, 4x
    steps: int = 250
    batch_size: int = 256
    temperature: float = 0.1
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    seed: int = 0
    max_train_images: int = 20_000
    max_seconds: float | None = None
    num_threads: int = 2
    standardise_input: bool = True
    # augmentations
    shift: float = 0.12
    scale: float = 0.10
    rotation: float = 6.0
    brightness: float = 0.15
    contrast: float = 0.25
    saturation: float = 0.25
    colour: float = 0.06
    noise: float = 0.04
    blur_p: float = 0.2
    blur_sigma: float = 1.0
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (40, 90)

    def __post_init__(self) -> None:
        if self.image_size < 8 or self.dim < 2 or self.dim > 256 or self.steps < 0 or self.batch_size < 2:
            raise ValueError(
                f"bad SimilarityParams: image_size >= 8, 2 <= dim <= 256, steps >= 0, "
                f"batch_size >= 2 (got {self.image_size}, {self.dim}, {self.steps}, {self.batch_size})"
            )
        if self.temperature <= 0 or self.lr <= 0 or self.num_threads < 1:
            raise ValueError("temperature, lr must be > 0 and num_threads >= 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["jpeg_quality"] = list(self.jpeg_quality)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SimilarityParams:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if "jpeg_quality" in kw:
            kw["jpeg_quality"] = tuple(int(q) for q in kw["jpeg_quality"])
        return cls(**kw)


# ---------------------------------------------------------------------------------------------
# preprocessing (identical to the project's embedders.to_tensor_batch)


def detect_channels(images: Sequence[np.ndarray]) -> int:
    """3 when any image has 3 channels that differ (a colour set), else 1."""
    return 3 if any(has_colour(img) for img in images) else 1


# ---------------------------------------------------------------------------------------------
# the network


class SimilarityNet(torch.nn.Module):
    """4 conv blocks (w, 2w, 4w, 4w channels; BN, ReLU, 2x2 average pooling after the first three),
    a 2x2 adaptive average-pooled map, a linear head to `dim`; output L2-normalised."""

    def __init__(self, channels: int, dim: int = 128, width: int = 32, standardise_input: bool = True):
        super().__init__()
        w = (width, 2 * width, 4 * width, 4 * width)
        layers: list[torch.nn.Module] = []
        c_in = channels
        for i, c in enumerate(w):
            layers += [
                torch.nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                torch.nn.BatchNorm2d(c),
                torch.nn.ReLU(inplace=True),
            ]
            if i < 3:
                layers.append(torch.nn.AvgPool2d(2))
            c_in = c
        self.body = torch.nn.Sequential(*layers)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.head = torch.nn.Linear(4 * w[-1], dim)
        self.standardise_input = standardise_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardise_input:
            # per image, all channels together: removes brightness / contrast, keeps relative colour
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            std = x.std(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) / (std + 0.02)
        else:
            x = x * 2 - 1
        z = self.head(self.pool(self.body(x)).flatten(1))
        return F.normalize(z, dim=1)


# ---------------------------------------------------------------------------------------------
# batched augmentations (all randomness from `gen`, a CPU torch.Generator)


def _u(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (sigma (B,)); sigma 0 leaves an image unchanged."""
    b, c, h, w = x.shape
    radius = 2
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.to(x.device, x.dtype).clamp_min(1e-3)[:, None]
    k1 = torch.exp(-0.5 * (t[None, :] / s) ** 2)
    k1 = k1 / k1.sum(1, keepdim=True)  # (B, 5)
    k1 = k1.repeat_interleave(c, 0)  # (B*C, 5)
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k1[:, None, None, :], groups=b * c)
    y = F.conv2d(y, k1[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


_JPEG_LUMA = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float32,
)
_JPEG_CHROMA = torch.full((8, 8), 99.0)
_JPEG_CHROMA[:4, :4] = torch.tensor(
    [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]], dtype=torch.float32
)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m.float()


_DCT = _dct_matrix()


def _quant_tables(quality: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    q = quality.clamp(1, 100).float()
    scale = torch.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    return torch.floor((base[None] * scale[:, None, None] + 50.0) / 100.0).clamp_min(1.0)  # (B, 8, 8)


def _jpeg_blocks(plane: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """DCT-quantise-IDCT of one (B, H, W) plane on the 0..255 scale; H, W padded to multiples of 8."""
    b, h, w = plane.shape
    ph, pw = (-h) % 8, (-w) % 8
    p = F.pad(plane[:, None], (0, pw, 0, ph), mode="replicate")[:, 0] if (ph or pw) else plane
    H, W = p.shape[1:]
    blocks = p.reshape(b, H // 8, 8, W // 8, 8).permute(0, 1, 3, 2, 4) - 128.0  # (B, h8, w8, 8, 8)
    d = _DCT.to(plane.device)
    coef = d @ blocks @ d.T
    t = table.to(plane.device)[:, None, None]
    coef = torch.round(coef / t) * t
    out = (d.T @ coef @ d) + 128.0
    out = out.permute(0, 1, 3, 2, 4).reshape(b, H, W)
    return out[:, :h, :w]


def jpeg_approx(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Approximate JPEG of (B, C, H, W) images in [0, 1] at per-image `quality` (B,): YCbCr,
    4:2:0 chroma, 8x8 DCT quantisation with the standard tables scaled by quality."""
    v = x * 255.0
    luma_t = _quant_tables(quality, _JPEG_LUMA)
    if x.shape[1] == 1:
        return (_jpeg_blocks(v[:, 0], luma_t)[:, None] / 255.0).clamp(0, 1)
    r, g, b = v[:, 0], v[:, 1], v[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
    chroma_t = _quant_tables(quality, _JPEG_CHROMA)
    h, w = y.shape[1:]
    y = _jpeg_blocks(y, luma_t)
    sub = F.avg_pool2d(torch.stack([cb, cr], 1), 2, ceil_mode=True)
    cb_s = _jpeg_blocks(sub[:, 0], chroma_t)
    cr_s = _jpeg_blocks(sub[:, 1], chroma_t)
    up = F.interpolate(torch.stack([cb_s, cr_s], 1), scale_factor=2, mode="nearest")[:, :, :h, :w]
    cb, cr = up[:, 0] - 128.0, up[:, 1] - 128.0
    out = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)
    return (out / 255.0).clamp(0, 1)


def augment(x: torch.Tensor, p: SimilarityParams, gen: torch.Generator) -> torch.Tensor:
    """One random near-copy of each image of a (B, C, S, S) batch in [0, 1] (CPU tensors)."""
    b, c, h, w = x.shape
    # geometry: rotation, scale, translation in one affine grid; reflected border
    angle = _u(gen, b, -p.rotation, p.rotation) * (math.pi / 180.0)
    scale = 1.0 + _u(gen, b, -p.scale, p.scale)
    tx, ty = _u(gen, b, -p.shift, p.shift) * 2.0, _u(gen, b, -p.shift, p.shift) * 2.0  # grid units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (b, c, h, w), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # photometric
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1.0 + _u(gen, b, -p.contrast, p.contrast)
    bright = _u(gen, b, -p.brightness, p.brightness)
    x = (x - mean) * contrast[:, None, None, None] + mean + bright[:, None, None, None]
    if c == 3:
        grey = x.mean(dim=1, keepdim=True)
        sat = 1.0 + _u(gen, b, -p.saturation, p.saturation)
        gains = 1.0 + (torch.rand(b, 3, generator=gen) * 2 - 1) * p.colour
        x = (grey + (x - grey) * sat[:, None, None, None]) * gains[:, :, None, None]
    # blur on a random subset
    blur_on = torch.rand(b, generator=gen) < p.blur_p
    sigma = _u(gen, b, 0.3, max(p.blur_sigma, 0.3)) * blur_on
    if p.blur_p > 0 and bool(blur_on.any()):
        x = torch.where(blur_on[:, None, None, None], _gaussian_blur(x, sigma), x)
    x = x.clamp(0, 1)
    # JPEG on a random subset, Gaussian noise on the others
    jpeg_on = torch.rand(b, generator=gen) < p.jpeg_p
    lo, hi = p.jpeg_quality
    quality = torch.randint(int(lo), int(hi) + 1, (b,), generator=gen)
    noise_sigma = torch.rand(b, generator=gen) * p.noise
    noise = torch.randn(x.shape, generator=gen) * noise_sigma[:, None, None, None]
    if p.jpeg_p > 0 and bool(jpeg_on.any()):
        idx = torch.nonzero(jpeg_on).flatten()
        x = x.clone()
        x[idx] = jpeg_approx(x[idx], quality[idx])
    x = torch.where(jpeg_on[:, None, None, None], x, x + noise)
    return x.clamp(0, 1)


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: each view's positive is the other view of its image; the 2B - 2 others are negatives."""
    z = torch.cat([z1, z2], 0)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


# ---------------------------------------------------------------------------------------------
# the model


def state_dict_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over the state dict's names, dtypes, shapes and bytes (in order)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


@contextlib.contextmanager
def _threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _deterministic_cudnn(device: torch.device):
    """On CUDA: deterministic cuDNN kernels while training (not verified bit-exact on a GPU)."""
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


@dataclass
class SimilarityModel:
    """A trained similarity; embed with the project's `Embedder(**embedder_kwargs(model))` (one way to embed)."""

    module: SimilarityNet
    channels: int
    params: SimilarityParams
    info: dict = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return self.params.image_size

    @property
    def dim(self) -> int:
        return self.params.dim

    @property
    def sha256(self) -> str:
        return state_dict_sha256(self.module)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) in [0, 1] -> (B, dim) rows (already L2-normalised), as an
        `Embedder.features`. A channel mismatch is bridged: colour to grey by ITU-R 601 luma (as PIL's
        convert("L"), up to rounding), grey to colour by repetition."""
        if x.shape[1] != self.channels:
            if self.channels == 1:
                w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device)[None, :, None, None]
                x = (x * w).sum(dim=1, keepdim=True)
            else:
                x = x.expand(-1, 3, -1, -1)
        return self.module(x.contiguous(memory_format=torch.channels_last))

    def save(self, path: str | Path) -> Path:
        """One torch file of tensors and plain types (loads with torch.load(weights_only=True)). Equal models give
        equal bytes, whatever the file is called and however long the training took: serialised in memory (torch
        names its archive after the file it writes, and callers write a temporary name first), the wall-clock
        seconds left out. So the weights file's SHA-256, part of the embedder fingerprint, is reproducible."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
        info = {k: v for k, v in _plain(self.info).items() if k != "seconds"}
        buffer = io.BytesIO()
        torch.save(
            {
                "format": FORMAT,
                "channels": int(self.channels),
                "params": self.params.to_dict(),
                "info": info,
                "state_dict": state,
            },
            buffer,
        )
        path.write_bytes(buffer.getvalue())
        return path


def _plain(d: dict) -> dict:
    """Keep only JSON-like values (weights_only loading refuses anything else)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[str(k)] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(i, (str, int, float, bool)) for i in v):
            out[str(k)] = list(v)
    return out


def _build(channels: int, params: SimilarityParams) -> SimilarityNet:
    return SimilarityNet(channels, params.dim, params.width, params.standardise_input)


def load_similarity(path: str | Path, device: torch.device | str = "cpu") -> SimilarityModel:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} file")
    params = SimilarityParams.from_dict(blob["params"])
    module = _build(int(blob["channels"]), params)
    module.load_state_dict(blob["state_dict"])
    module.to(device).eval()
    return SimilarityModel(module, int(blob["channels"]), params, dict(blob.get("info", {})))


def _subset(n: int, limit: int, seed: int) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def train_similarity(
    images: Sequence[np.ndarray],
    params: SimilarityParams = SimilarityParams(),
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    channels: int | None = None,
) -> SimilarityModel:
    """Train the similarity on `images` (uint8 HxW or HxWx3, any size); deterministic for a seed.

    `progress(step, steps)` is called every 10 steps and at the end. `channels` overrides the
    colour detection (1 or 3).
    """
    if len(images) < 2:
        raise ValueError(f"train_similarity needs at least 2 images, got {len(images)}")
    p = params
    t0 = time.perf_counter()
    rows = _subset(len(images), p.max_train_images, p.seed)
    subset = [images[int(i)] for i in rows]
    ch = channels or detect_channels(subset)
    if ch not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {ch}")
    # kept as uint8 (4x less memory); k / 255 -> uint8 -> / 255 is exact, so batches equal to_tensor_batch's
    data = torch.cat(
        [(to_tensor_batch(chunk, p.image_size, ch) * 255.0).round_().to(torch.uint8) for chunk in chunks(subset, 1024)]
    )
    n = len(data)
    bs = min(p.batch_size, n)
    device = torch.device(device)
    with _threads(p.num_threads), _deterministic_cudnn(device):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(p.seed)
            module = _build(ch, p)
        module.to(device=device, memory_format=torch.channels_last).train()
        gen = torch.Generator().manual_seed(p.seed)
        opt = torch.optim.AdamW(module.parameters(), lr=p.lr, weight_decay=p.weight_decay)

        def lr_at(step: int) -> float:
            if step < p.warmup_steps:
                return p.lr * (step + 1) / p.warmup_steps
            span = max(1, p.steps - p.warmup_steps)
            return p.lr * 0.5 * (1 + math.cos(math.pi * (step - p.warmup_steps) / span))

        perm = torch.randperm(n, generator=gen)
        cursor, step, losses, stopped_early = 0, 0, [], False
        for step in range(p.steps):
            if p.max_seconds is not None and time.perf_counter() - t0 > p.max_seconds:
                stopped_early = True
                break
            if cursor + bs > n:
                perm, cursor = torch.randperm(n, generator=gen), 0
            batch = data[perm[cursor : cursor + bs]].float() / 255.0
            cursor += bs
            v1, v2 = augment(batch, p, gen), augment(batch, p, gen)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            z = module(torch.cat([v1, v2]).to(device).contiguous(memory_format=torch.channels_last))
            loss = info_nce(z[:bs], z[bs:], p.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if progress and ((step + 1) % 10 == 0 or step + 1 == p.steps):
                progress(step + 1, p.steps)
        else:
            step = p.steps
        module.to(memory_format=torch.contiguous_format).eval()
    done = step if stopped_early else p.steps
    info = {
        "train_images": int(n),
        "steps_done": int(done),
        "stopped_early": stopped_early,
        "seconds": round(time.perf_counter() - t0, 3),
        "final_loss": float(np.mean(losses[-10:])) if losses else float("nan"),
        "first_loss": float(np.mean(losses[:10])) if losses else float("nan"),
    }
    return SimilarityModel(module, ch, p, info)


# What `inference_net` does to a trained net, in the embedder's fingerprint: vectors stored before it are re-embedded.
INFERENCE_FORM = "bn-folded"


def inference_net(module: SimilarityNet) -> SimilarityNet:
    """A trained net as it embeds: a copy with each BatchNorm folded into the conv before it (the running statistics
    that eval mode uses) and channels-last weights, which oneDNN runs about 2x faster on a CPU (docs/PERFORMANCE.md).
    Equal to the trained net up to float rounding (~5e-7, tested); `features` hands it channels-last input."""
    net = copy.deepcopy(module).eval()
    layers, folded = list(net.body), []
    while layers:
        layer = layers.pop(0)
        if isinstance(layer, torch.nn.Conv2d) and layers and isinstance(layers[0], torch.nn.BatchNorm2d):
            layer = fuse_conv_bn_eval(layer, layers.pop(0))
        folded.append(layer)
    net.body = torch.nn.Sequential(*folded)
    return net.to(memory_format=torch.channels_last)


def embedder_kwargs(model: SimilarityModel | str | Path, name: str = "similarity") -> dict:
    """Keyword arguments for the project's `Embedder(**kwargs)` (kept free of project imports).

    `features` takes (B, C, S, S) in [0, 1] as made by the project's to_tensor_batch, which
    this module's preprocessing matches; `weights_sha256` is the state dict's hash (or the
    file's when given a path).
    """
    path = None
    if not isinstance(model, SimilarityModel):
        path = Path(model)
        model = load_similarity(path)
    sha = sha256_file(path) if path is not None else model.sha256
    model = SimilarityModel(inference_net(model.module), model.channels, model.params, model.info)
    return {
        "name": name,
        "image_size": model.image_size,
        "channels": model.channels,
        "dim": model.dim,
        "features": model.features,
        "weights_file": str(path) if path else None,
        "weights_sha256": sha,
        "module": model.module,
        "form": INFERENCE_FORM,
    }
