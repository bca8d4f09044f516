"""The demo's generative model: a small class-conditional VAE (MLP, 28x28 grey).

It exists only to produce generated images for the demo; the valuation never sees it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .embedders import to_tensor_batch

IMAGE_SIZE = 28


class ConditionalVAE(nn.Module):
    def __init__(self, n_classes: int, latent: int = 16, hidden: int = 512):
        super().__init__()
        d = IMAGE_SIZE * IMAGE_SIZE
        self.n_classes, self.latent = n_classes, latent
        self.encoder = nn.Sequential(nn.Linear(d + n_classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU())
        self.to_stats = nn.Linear(hidden // 2, 2 * latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent + n_classes, hidden // 2), nn.ReLU(), nn.Linear(hidden // 2, hidden), nn.ReLU(), nn.Linear(hidden, d)
        )

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = nn.functional.one_hot(y, self.n_classes).to(z.dtype)
        return self.decoder(torch.cat([z, onehot], 1))  # logits

    def forward(self, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor):
        onehot = nn.functional.one_hot(y, self.n_classes).to(x.dtype)
        mu, logvar = self.to_stats(self.encoder(torch.cat([x, onehot], 1))).chunk(2, dim=1)
        z = mu + noise * (0.5 * logvar).exp()
        return self.decode(z, y), mu, logvar


@dataclass(frozen=True)
class TrainParams:
    epochs: int = 15
    batch_size: int = 128
    learning_rate: float = 1e-3
    latent: int = 16
    seed: int = 0


def train_cvae(
    images: list[np.ndarray],
    labels: list[str],
    params: TrainParams,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> tuple[ConditionalVAE, list[str]]:
    """Train on grey 28x28 versions of `images`; returns the model and its class names."""
    if any(label is None for label in labels):
        raise ValueError("the demo generator is class-conditional: every training image needs a label")
    classes = sorted({str(label) for label in labels})  # plain str: checkpoints load with weights_only
    position = {c: i for i, c in enumerate(classes)}
    y_all = torch.tensor([position[str(label)] for label in labels], dtype=torch.int64)
    x_all = to_tensor_batch(images, IMAGE_SIZE, 1).flatten(1)
    gen = torch.Generator().manual_seed(params.seed)
    torch.manual_seed(params.seed)
    model = ConditionalVAE(len(classes), params.latent).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=params.learning_rate)
    for epoch in range(params.epochs):
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(len(x_all), generator=gen)
        for s in range(0, len(order), params.batch_size):
            rows = order[s : s + params.batch_size]
            x, y = x_all[rows].to(device), y_all[rows].to(device)
            noise = torch.randn(len(rows), params.latent, generator=gen).to(device)
            logits, mu, logvar = model(x, y, noise)
            rec = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
            kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            loss = (rec + kl) / len(rows)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(rows)
        if on_epoch:
            on_epoch(epoch + 1, total / len(x_all), time.perf_counter() - start)
    return model.eval(), classes


@torch.inference_mode()
def sample_cvae(model: ConditionalVAE, classes: list[str], n: int, seed: int, device="cpu") -> tuple[np.ndarray, list[str]]:
    """n images (uint8, n x 28 x 28), classes in turn, from seeded latent noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(classes)
    z = torch.randn(n, model.latent, generator=gen)
    x = torch.sigmoid(model.decode(z.to(device), y.to(device))).cpu().numpy()
    images = np.clip(x.reshape(n, IMAGE_SIZE, IMAGE_SIZE) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return images, [classes[i] for i in y.tolist()]


def save_checkpoint(model: ConditionalVAE, classes: list[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"state_dict": model.state_dict(), "classes": classes, "latent": model.latent}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[ConditionalVAE, list[str]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = ConditionalVAE(len(ckpt["classes"]), ckpt["latent"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), list(ckpt["classes"])
