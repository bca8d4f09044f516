"""The demo's second generator family: a small class-conditional DDPM (28x28 grey), sampled with DDIM.

Trained here on the CPU in minutes; its samples are coarse, but they come from a different model
family than the VAE, which is what the consistency criterion needs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..common.tensors import to_tensor_batch

IMAGE_SIZE = 28


@dataclass(frozen=True)
class DiffusionParams:
    steps: int = 2000  # optimiser steps (batches), not epochs: the cost does not grow with n
    batch_size: int = 64
    learning_rate: float = 2e-3
    channels: int = 16  # 16: about 80 ms per step of 64 images on 2 cores
    timesteps: int = 500  # T of the forward process (cosine schedule)
    sample_steps: int = 25  # DDIM steps at sampling time (eta = 0: deterministic given the noise)
    seed: int = 0


def cosine_alpha_bar(timesteps: int) -> torch.Tensor:
    """alpha_bar_t of Nichol & Dhariwal's cosine schedule, t = 0..T-1, clipped away from 0."""
    s = 0.008
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()


def _time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], 1)


class _ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(min(8, c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(min(8, c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, e):
        h = self.conv1(nn.functional.silu(self.norm1(x))) + self.emb(e)[:, :, None, None]
        return self.skip(x) + self.conv2(nn.functional.silu(self.norm2(h)))


class SmallUNet(nn.Module):
    """28 -> 14 -> 7 and back, with time and class embeddings added in every block."""

    def __init__(self, n_classes: int, channels: int = 32):
        super().__init__()
        c, e = channels, channels * 4
        self.n_classes, self.channels = n_classes, channels
        self.time = nn.Sequential(nn.Linear(c, e), nn.SiLU(), nn.Linear(e, e))
        self.label = nn.Embedding(n_classes, e)
        self.inp = nn.Conv2d(1, c, 3, padding=1)
        self.down1, self.down2 = _ResBlock(c, c, e), _ResBlock(c, 2 * c, e)
        self.mid = _ResBlock(2 * c, 2 * c, e)
        self.up2, self.up1 = _ResBlock(4 * c, c, e), _ResBlock(2 * c, c, e)
        self.out = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, x, t, y):
        e = self.time(_time_embedding(t, self.channels)) + self.label(y)
        h1 = self.down1(self.inp(x), e)  # 28
        h2 = self.down2(nn.functional.avg_pool2d(h1, 2), e)  # 14
        h = self.mid(nn.functional.avg_pool2d(h2, 2), e)  # 7
        h = self.up2(torch.cat([nn.functional.interpolate(h, scale_factor=2.0), h2], 1), e)
        h = self.up1(torch.cat([nn.functional.interpolate(h, scale_factor=2.0), h1], 1), e)
        return self.out(h)


def train_ddpm(
    images: list[np.ndarray],
    labels: list[str],
    params: DiffusionParams,
    device: torch.device | str = "cpu",
    on_progress: Callable[[int, float, float], None] | None = None,
) -> tuple[SmallUNet, list[str]]:
    """Epsilon-prediction DDPM on grey 28x28 versions of `images` scaled to [-1, 1]."""
    if any(label is None for label in labels):
        raise ValueError("the demo generator is class-conditional: every training image needs a label")
    classes = sorted({str(label) for label in labels})
    position = {c: i for i, c in enumerate(classes)}
    y_all = torch.tensor([position[str(label)] for label in labels], dtype=torch.int64)
    x_all = to_tensor_batch(images, IMAGE_SIZE, 1) * 2 - 1
    gen = torch.Generator().manual_seed(params.seed)
    torch.manual_seed(params.seed)
    model = SmallUNet(len(classes), params.channels).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, params.learning_rate, total_steps=params.steps, pct_start=0.1)
    alpha_bar = cosine_alpha_bar(params.timesteps)
    start, running = time.perf_counter(), 0.0
    for step in range(1, params.steps + 1):
        rows = torch.randint(len(x_all), (params.batch_size,), generator=gen)
        t = torch.randint(params.timesteps, (params.batch_size,), generator=gen)
        noise = torch.randn(params.batch_size, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
        a = alpha_bar[t][:, None, None, None]
        x_t = a.sqrt() * x_all[rows] + (1 - a).sqrt() * noise
        loss = nn.functional.mse_loss(model(x_t.to(device), t.to(device), y_all[rows].to(device)), noise.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step > 1 else value
        if on_progress and (step % 250 == 0 or step == params.steps):
            on_progress(step, running, time.perf_counter() - start)
    return model.eval(), classes


@torch.inference_mode()
def sample_ddim(
    model: SmallUNet,
    classes: list[str],
    n: int,
    seed: int,
    params: DiffusionParams,
    device="cpu",
    batch_size: int = 500,
) -> tuple[np.ndarray, list[str]]:
    """n images (uint8, n x 28 x 28), classes in turn, by deterministic DDIM from seeded noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(classes)
    x_T = torch.randn(n, 1, IMAGE_SIZE, IMAGE_SIZE, generator=gen)
    alpha_bar = cosine_alpha_bar(params.timesteps).to(device)
    times = torch.linspace(params.timesteps - 1, 0, params.sample_steps).round().long().tolist()
    out = []
    for s in range(0, n, batch_size):
        x, yb = x_T[s : s + batch_size].to(device), y[s : s + batch_size].to(device)
        for i, t in enumerate(times):
            a = alpha_bar[t]
            a_prev = alpha_bar[times[i + 1]] if i + 1 < len(times) else torch.tensor(1.0, device=device)
            eps = model(x, torch.full((len(x),), t, device=device), yb)
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        out.append(x.cpu())
    images = ((torch.cat(out)[:, 0].numpy() + 1) / 2 * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return images, [classes[i] for i in y.tolist()]
