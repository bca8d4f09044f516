"""The demo's generative models: a class-conditional VAE (MLP, 28x28 grey) or DDPM (demo_diffusion).

They exist only to produce generated images for the demo (and, for the reports, to be retrained on
changed data); the valuation never sees them. `train_generator` / `DemoGenerator` are the one
interface over both families; checkpoints are cached by training data and parameters.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..common.files import write_atomically
from ..common.tensors import load_weights, to_tensor_batch
from .diffusion import DiffusionParams, SmallUNet, sample_ddim, train_ddpm

GENERATOR_FAMILIES = ("vae", "diffusion")

IMAGE_SIZE = 28


class ConditionalVAE(nn.Module):
    """An MLP VAE conditioned on the class. Sampled from its `prior`: N(0, I), or the aggregate posterior (a Gaussian
    mixture per class fitted to the encoder's means of the training images, `fit_aggregate_prior`)."""

    def __init__(self, n_classes: int, latent: int = 16, hidden: int = 512, prior_components: int = 0):
        super().__init__()
        d = IMAGE_SIZE * IMAGE_SIZE
        self.n_classes, self.latent = n_classes, latent
        # Per class: mixture weights, means and Cholesky factors of the latent prior (buffers: saved with the weights).
        # Zero components: the standard normal prior.
        k = prior_components
        self.register_buffer("prior_weights", torch.zeros(n_classes, k))
        self.register_buffer("prior_means", torch.zeros(n_classes, k, latent))
        self.register_buffer("prior_chols", torch.zeros(n_classes, k, latent, latent))
        self.encoder = nn.Sequential(
            nn.Linear(d + n_classes, hidden), nn.ReLU(), nn.Linear(hidden, hidden // 2), nn.ReLU()
        )
        self.to_stats = nn.Linear(hidden // 2, 2 * latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent + n_classes, hidden // 2),
            nn.ReLU(),
            nn.Linear(hidden // 2, hidden),
            nn.ReLU(),
            nn.Linear(hidden, d),
        )

    @property
    def prior_components(self) -> int:
        return self.prior_weights.shape[1]

    def sample_latent(self, y: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """z for classes `y` (class indices) from the prior, the noise drawn from `gen` (on the CPU)."""
        eps = torch.randn(len(y), self.latent, generator=gen)
        if not self.prior_components:
            return eps
        u = torch.rand(len(y), generator=gen)
        cdf = self.prior_weights.cpu()[y].cumsum(1)
        comp = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).reshape(-1).clamp(max=self.prior_components - 1)
        mean, chol = self.prior_means.cpu()[y, comp], self.prior_chols.cpu()[y, comp]
        return mean + (chol @ eps[:, :, None])[:, :, 0]

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = y if y.dtype.is_floating_point else nn.functional.one_hot(y, self.n_classes).to(z.dtype)
        return self.decoder(torch.cat([z, onehot], 1))  # logits

    def forward(self, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor):
        # y: class indices, or already one-hot (float) where one_hot cannot run (torch.func.vmap)
        onehot = y if y.dtype.is_floating_point else nn.functional.one_hot(y, self.n_classes).to(x.dtype)
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
    snapshots: int = 3  # parameter snapshots kept (evenly spaced epochs) for the TracIn baseline
    # Sampling prior: Gaussian components per class fitted to the encoder's means of the training images (the
    # aggregate posterior; Ghosh et al., ICLR 2020), or 0 for N(0, I), whose samples fall between classes and blur
    # (measured: docs/RESULTS.md, "The demo generator").
    prior_components: int = 10


def snapshot_epochs(epochs: int, snapshots: int) -> list[int]:
    return sorted({max(1, round(epochs * (i + 1) / snapshots)) for i in range(snapshots)}) if snapshots else []


def train_cvae(
    images: list[np.ndarray],
    labels: list[str],
    params: TrainParams,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[int, float, float], None] | None = None,
    snapshots: list | None = None,
) -> tuple[ConditionalVAE, list[str]]:
    """Train on grey 28x28 versions of `images`; returns the model and its class names.

    With a list as `snapshots`, a CPU copy of the parameters is appended at `snapshot_epochs`.
    """
    if any(label is None for label in labels):
        raise ValueError("the demo generator is class-conditional: every training image needs a label")
    classes = sorted({str(label) for label in labels})  # plain str: checkpoints load with weights_only
    position = {c: i for i, c in enumerate(classes)}
    y_all = torch.tensor([position[str(label)] for label in labels], dtype=torch.int64)
    x_all = to_tensor_batch(images, IMAGE_SIZE, 1).flatten(1)
    gen = torch.Generator().manual_seed(params.seed)
    torch.manual_seed(params.seed)
    model = ConditionalVAE(len(classes), params.latent, prior_components=params.prior_components).to(device)
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
            total += loss.item() * len(rows)
        if on_epoch:
            on_epoch(epoch + 1, total / len(x_all), time.perf_counter() - start)
        if snapshots is not None and epoch + 1 in snapshot_epochs(params.epochs, params.snapshots):
            snapshots.append({k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    model.eval()
    if params.prior_components:
        fit_aggregate_prior(model, x_all, y_all, params.seed, device)
    return model, classes


@torch.inference_mode()
def fit_aggregate_prior(model: ConditionalVAE, x: torch.Tensor, y: torch.Tensor, seed: int, device="cpu") -> None:
    """Fit the model's per-class latent prior: a Gaussian mixture (full covariances, seeded k-means start) on the
    encoder's means of the class's training images (x: (n, 784) in [0, 1], y: class indices). A class with fewer
    images than twice the components gets as many components as it has pairs of images; a class with one image, a
    narrow Gaussian (sd 0.01) at its latent mean."""
    from sklearn.mixture import GaussianMixture

    mus = (
        torch.cat(
            [
                model.to_stats(
                    model.encoder(
                        torch.cat(
                            [
                                x[s : s + 4096].to(device),
                                nn.functional.one_hot(y[s : s + 4096], model.n_classes).to(device, x.dtype),
                            ],
                            1,
                        )
                    )
                )[:, : model.latent].cpu()
                for s in range(0, len(x), 4096)
            ]
        )
        .double()
        .numpy()
    )
    k = model.prior_components
    for c in range(model.n_classes):
        points = mus[(y == c).numpy()]
        model.prior_weights[c] = 0
        if len(points) < 2:  # one image: a narrow Gaussian at its latent mean (the ridge the mixtures get)
            model.prior_weights[c, 0] = 1
            model.prior_means[c, 0] = torch.from_numpy(points[0])
            model.prior_chols[c, 0] = torch.eye(model.latent) * 1e-2
            continue
        gm = GaussianMixture(min(k, len(points) // 2), covariance_type="full", reg_covar=1e-4, random_state=seed)
        gm.fit(points)
        n = gm.n_components
        model.prior_weights[c, :n] = torch.from_numpy(gm.weights_)
        model.prior_means[c, :n] = torch.from_numpy(gm.means_)
        model.prior_chols[c, :n] = torch.linalg.cholesky(torch.from_numpy(gm.covariances_))


@torch.inference_mode()
def sample_cvae(
    model: ConditionalVAE, classes: list[str], n: int, seed: int, device="cpu"
) -> tuple[np.ndarray, list[str]]:
    """n images (uint8, n x 28 x 28), classes in turn, from seeded latent noise."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % len(classes)
    z = model.sample_latent(y, gen)
    x = torch.sigmoid(model.decode(z.to(device), y.to(device))).cpu().numpy()
    images = np.clip(x.reshape(n, IMAGE_SIZE, IMAGE_SIZE) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return images, [classes[i] for i in y.tolist()]


@dataclass(frozen=True)
class GeneratorSpec:
    """Which family to train and with what parameters; its key names the checkpoint."""

    family: str = "vae"
    vae: TrainParams = field(default_factory=TrainParams)
    diffusion: DiffusionParams = field(default_factory=DiffusionParams)

    def __post_init__(self) -> None:
        if self.family not in GENERATOR_FAMILIES:
            raise ValueError(f"generator family must be one of {GENERATOR_FAMILIES}, got {self.family!r}")

    @property
    def params(self) -> TrainParams | DiffusionParams:
        return self.vae if self.family == "vae" else self.diffusion

    def key(self) -> str:
        return hashlib.sha256(repr((self.family, self.params)).encode()).hexdigest()[:8]

    def to_dict(self) -> dict:
        return {"family": self.family, "vae": asdict(self.vae), "diffusion": asdict(self.diffusion)}

    @classmethod
    def from_dict(cls, data: dict) -> GeneratorSpec:
        # A spec saved before the fitted prior existed sampled from N(0, I): keep that, not today's default.
        return cls(
            data["family"], TrainParams(**{"prior_components": 0, **data["vae"]}), DiffusionParams(**data["diffusion"])
        )


@dataclass
class DemoGenerator:
    spec: GeneratorSpec
    model: nn.Module
    classes: list[str]
    snapshots: list[dict] = field(default_factory=list)  # VAE only: parameters at snapshot epochs

    def sample(self, n: int, seed: int, device="cpu") -> tuple[np.ndarray, list[str]]:
        """n images (uint8, n x 28 x 28), classes in turn; the same seed gives the same noise."""
        model = self.model.to(device)
        if self.spec.family == "vae":
            return sample_cvae(model, self.classes, n, seed, device)
        return sample_ddim(model, self.classes, n, seed, self.spec.diffusion, device)


def train_generator(
    spec: GeneratorSpec,
    images: list[np.ndarray],
    labels: list[str],
    device="cpu",
    log: Callable[[str], None] | None = None,
) -> DemoGenerator:
    say = log or (lambda _: None)
    if spec.family == "vae":
        snaps: list[dict] = []
        p = spec.vae
        model, classes = train_cvae(
            images,
            labels,
            p,
            device,
            lambda e, loss, s: say(f"VAE epoch {e}/{p.epochs}: loss {loss:.1f} ({s:.1f} s)"),
            snaps,
        )
        return DemoGenerator(spec, model.cpu(), classes, snaps)
    d = spec.diffusion
    model, classes = train_ddpm(
        images, labels, d, device, lambda step, loss, s: say(f"DDPM step {step}/{d.steps}: loss {loss:.4f} ({s:.0f} s)")
    )
    return DemoGenerator(spec, model.cpu(), classes)


def save_generator(generator: DemoGenerator, path: Path) -> None:
    checkpoint = {
        "spec": generator.spec.to_dict(),
        "state_dict": generator.model.state_dict(),
        "classes": generator.classes,
        "snapshots": generator.snapshots,
    }
    write_atomically(path, lambda tmp: torch.save(checkpoint, tmp))


def load_generator(path: Path) -> DemoGenerator:
    ckpt = load_weights(path)
    classes = list(ckpt["classes"])
    spec = GeneratorSpec.from_dict(ckpt["spec"])
    if spec.family == "vae":
        model: nn.Module = ConditionalVAE(len(classes), spec.vae.latent, prior_components=spec.vae.prior_components)
    else:
        model = SmallUNet(len(classes), spec.diffusion.channels)
    model.load_state_dict(ckpt["state_dict"])
    return DemoGenerator(spec, model.eval(), classes, list(ckpt.get("snapshots", [])))


def data_key(content_hashes: list[str], labels: list[str]) -> str:
    """A key for the training data of a generator: content and labels, in order."""
    h = hashlib.sha256()
    for value in zip(content_hashes, labels):
        h.update(repr(value).encode())
    return h.hexdigest()[:16]


def cached_generator(
    spec: GeneratorSpec,
    images: list[np.ndarray],
    labels: list[str],
    key: str,
    folder: Path,
    device="cpu",
    log: Callable[[str], None] | None = None,
) -> tuple[DemoGenerator, Path]:
    """Train, or reuse the checkpoint trained on the same data (`key`) with the same spec."""
    path = folder / f"{spec.family}-{key}-{spec.key()}.pt"
    if path.is_file():
        if log:
            log(f"reusing checkpoint {path} (same training data and parameters)")
        return load_generator(path), path
    generator = train_generator(spec, images, labels, device, log)
    save_generator(generator, path)
    return generator, path
