"""TracIn-style gradient attribution on the demo VAE: the kind of baseline the paper compares against.

TracIn(i, j) = sum_c lr <grad L_c(x_i), grad L_c(x_hat_j)> over saved parameter snapshots c, with L
the VAE's negative ELBO (deterministic: z = mu). Every layer is linear, so an example's gradient of a
weight is the outer product delta a^T of the layer's output gradient and input. It is projected with
a seeded Kronecker-factored Gaussian projection, (R_out delta) (x) (R_in a) (as in LoGra, Choe et al.
2024): unbiased for inner products, computed from one batched backward pass, never materialising a
per-example gradient. Unlike GMValuator it needs the generator, its checkpoints and its loss.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..common.tensors import to_tensor_batch
from ..demo.generator import IMAGE_SIZE, ConditionalVAE


@dataclass(frozen=True)
class TracInParams:
    factor: int | None = 24  # per-layer projection factor p: p*p dimensions per layer; None = exact
    batch_size: int = 256
    seed: int = 0
    # Each example's (projected) gradient scaled to length 1 at every snapshot: the cosine of the gradients, which
    # takes out the gradient's length (with the inner product, a few training images of high loss top every list:
    # bench/tracin_sanity.py). Off in the reports: TracIn as published.
    normalise: bool = False


def _linear_layers(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def _projections(
    layers: list[nn.Linear], factor: int | None, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor] | None]:
    if factor is None:
        return [None] * len(layers)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for layer in layers:
        r_out = torch.randn(factor, layer.out_features, generator=gen) / factor**0.5
        r_in = torch.randn(factor, layer.in_features + 1, generator=gen) / factor**0.5  # + 1: the bias
        out.append((r_out, r_in))
    return out


def vae_losses(model: ConditionalVAE, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example negative ELBO with z = mu (x: B x d in [0, 1], y: class indices)."""
    logits, mu, logvar = model(x, y, torch.zeros(len(x), model.latent))
    rec = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return rec + kl


def projected_gradients(
    model: ConditionalVAE,
    state: dict,
    images: list[np.ndarray],
    labels: list[int],
    params: TracInParams,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Per-example loss gradients at parameters `state`, projected: (len(images), dim) float32."""
    model = copy.deepcopy(model).eval()  # the caller's model keeps its own parameters
    model.load_state_dict(state)
    layers = _linear_layers(model)
    projections = _projections(layers, params.factor, params.seed)
    captured: dict[nn.Linear, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        layer.register_forward_hook(lambda mod, inp, out: captured.__setitem__(mod, (inp[0], out))) for layer in layers
    ]
    parts = []
    try:
        for s in range(0, len(images), params.batch_size):
            x = to_tensor_batch(images[s : s + params.batch_size], IMAGE_SIZE, 1).flatten(1)
            y = torch.tensor(labels[s : s + params.batch_size], dtype=torch.int64)
            captured.clear()
            losses = vae_losses(model, x, y)
            outputs = [captured[layer][1] for layer in layers]
            # Examples are independent, so the gradient of the summed loss at a layer's output, row b,
            # is example b's own output gradient.
            deltas = torch.autograd.grad(losses.sum(), outputs)
            blocks = []
            for layer, delta, proj in zip(layers, deltas, projections):
                a = torch.cat([captured[layer][0].detach(), torch.ones(len(x), 1)], 1)  # (B, in + 1)
                if proj is not None:
                    delta, a = delta @ proj[0].T, a @ proj[1].T
                blocks.append(torch.einsum("bo,bi->boi", delta, a).reshape(len(x), -1))
            parts.append(torch.cat(blocks, 1).numpy().astype(np.float32))
            if progress:
                progress(len(x))
    finally:
        for h in hooks:
            h.remove()
    return np.concatenate(parts)


def tracin_scores(
    model: ConditionalVAE,
    snapshots: list[dict],
    learning_rate: float,
    classes: list[str],
    train: list[np.ndarray],
    train_labels: list[str],
    generated: list[np.ndarray],
    generated_labels: list[str],
    params: TracInParams,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:
    """(m, n) TracIn scores of every training image for every generated image, and the seconds taken."""
    if not snapshots:
        raise ValueError("TracIn needs parameter snapshots saved during training; retrain the demo VAE")
    start = time.perf_counter()
    position = {c: i for i, c in enumerate(classes)}
    ytr = [position[str(label)] for label in train_labels]
    ygen = [position[str(label)] for label in generated_labels]
    scores = np.zeros((len(generated), len(train)), dtype=np.float64)
    for state in snapshots:
        g_train = projected_gradients(model, state, train, ytr, params, progress).astype(np.float64)
        g_gen = projected_gradients(model, state, generated, ygen, params, progress).astype(np.float64)
        if params.normalise:
            g_train /= np.linalg.norm(g_train, axis=1, keepdims=True) + 1e-12
            g_gen /= np.linalg.norm(g_gen, axis=1, keepdims=True) + 1e-12
        scores += learning_rate * (g_gen @ g_train.T)
    return scores, time.perf_counter() - start
