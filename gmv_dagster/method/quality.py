"""No-reference quality q_j in [0, 1] (docs/DESIGN.md, method step 3).

A scorer gives a raw score per image; a mapping anchored on the data turns it into q:
q = 1 at the median raw score of held-out training images (what "clean" looks like here),
q = 0 at the median raw score of uniform-noise images of the same size, linear between,
clipped to [0, 1]. The same formula serves lower-better and higher-better metrics.

Backends: `niqe_refit` (default; NIQE whose pristine model is refit on the training images,
through pyiqa), pyiqa's `maniqa`, `topiq_nr`, `musiq` (local weights file), `piqe` (offline,
but it inverts on small images: see README), and `none` (q = 1, the ablation).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..common.files import sha256_file, write_atomically
from ..common.sampling import chunks
from ..common.tensors import WeightsNotFoundError, to_tensor_batch

# Metrics that need a weights file, and where their authors publish it.
WEIGHTED_METRICS = {
    "maniqa": "MANIQA checkpoint (e.g. ckpt_koniq10k.pt from the MANIQA or pyiqa release)",
    "topiq_nr": "TOPIQ-NR checkpoint (cfanet_nr_koniq_res50-*.pth from the pyiqa release)",
    "musiq": "MUSIQ checkpoint (musiq_koniq_ckpt-*.pth from the pyiqa release)",
}
METRICS = ("niqe_refit", "piqe", "none", *WEIGHTED_METRICS)
NIQE_SIZE = 192  # NIQE uses 96-px blocks; 192 px gives 4 blocks per image at the first scale.
# Bicubic keeps edges that bilinear upsampling of small images would blur (measured: with
# bilinear, heavily blurred Fashion-MNIST images kept a median q of 0.49; see README).
UPSAMPLE = Image.BICUBIC


@dataclass(frozen=True)
class AnchoredMapping:
    """q = clip((bad - s) / (bad - good), 0, 1)."""

    good: float
    bad: float

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        span = self.bad - self.good
        if span == 0 or not np.isfinite(span):
            raise ValueError(f"quality anchors do not separate clean from noise (good={self.good}, bad={self.bad})")
        return np.clip((self.bad - np.asarray(raw, dtype=np.float64)) / span, 0.0, 1.0)


@dataclass
class QualityModel:
    """A fitted scorer: raw scores, and q in [0, 1] through an anchored mapping."""

    metric: str
    raw_score: Callable[..., np.ndarray]  # (images, done) -> raw scores; done(n) after each n images, if given
    mapping: AnchoredMapping | None  # None: q = 1 (the `none` ablation)
    params_file: str | None = None
    params_sha256: str | None = None

    def score(self, images: list[np.ndarray],
              progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(raw scores, q); `progress(n, total)` after each n of the `total` images."""
        raw = self.raw_score(images, _counting(progress, len(images)))
        if not np.isfinite(raw).all():
            bad = int(np.flatnonzero(~np.isfinite(raw))[0])
            raise ValueError(f"quality metric {self.metric} gave a non-finite score for image #{bad}")
        q = np.ones(len(images)) if self.mapping is None else self.mapping(raw)
        return raw, q

    def describe(self) -> dict:
        out = {"metric": self.metric, "params_file": self.params_file, "params_sha256": self.params_sha256}
        if self.mapping is not None:
            out.update(anchor_clean=self.mapping.good, anchor_noise=self.mapping.bad)
        return out


def noise_like(images: list[np.ndarray], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=img.shape, dtype=np.uint8) for img in images]


def _counting(progress: Callable[[int, int], None] | None, total: int) -> Callable[[int], None] | None:
    return None if progress is None else lambda n: progress(n, total)


def _pyiqa_scores(metric, images: list[np.ndarray], size: int, device, batch_size: int,
                  done: Callable[[int], None] | None = None) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for chunk in chunks(images, batch_size):
            x = to_tensor_batch(chunk, size, 3, UPSAMPLE).to(device)
            out.append(metric(x).reshape(-1).double().cpu().numpy())
            if done is not None:
                done(len(chunk))
    return np.concatenate(out) if out else np.empty(0)


def niqe_features(images: list[np.ndarray], batch_size: int = 64, done: Callable[[int], None] | None = None) -> np.ndarray:
    """NIQE's 36-d block features at two scales, exactly as pyiqa computes them for scoring."""
    from pyiqa.archs.niqe_arch import (
        blockproc,
        compute_feature,
        normalize_img_with_gauss,
    )
    from pyiqa.matlab_utils import imresize
    from pyiqa.utils.color_util import to_y_channel

    feats = []
    for chunk in chunks(images, batch_size):
        img = to_y_channel(to_tensor_batch(chunk, NIQE_SIZE, 3, UPSAMPLE).double(), 255, "yiq")
        per_scale = []
        for scale in (1, 2):
            normalised = normalize_img_with_gauss(img, padding="replicate")
            per_scale.append(blockproc(normalised, [96 // scale, 96 // scale], fun=compute_feature))
            if scale == 1:
                img = imresize(img / 255.0, scale=0.5, antialiasing=True) * 255.0
        feats.append(torch.cat(per_scale, -1).reshape(-1, 36).numpy())
        if done is not None:
            done(len(chunk))
    return np.concatenate(feats)


def fit_niqe_params(images: list[np.ndarray], path: Path, done: Callable[[int], None] | None = None) -> Path:
    """Refit NIQE's pristine multivariate Gaussian on `images` and save it as pyiqa reads it (path-<sha>.mat)."""
    import scipy.io

    f = niqe_features(images, done=done)
    f = f[np.isfinite(f).all(1)]
    if len(f) < 2 * f.shape[1]:
        raise ValueError(f"NIQE refit needs more reference images: {len(f)} usable blocks for {f.shape[1]} features")
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"mu_prisparam": f.mean(0)[None], "cov_prisparam": np.cov(f.T)})
    # The MAT header's 116 bytes of text carry the time of writing; a fixed text makes equal parameters equal files
    # (and so equal names and data versions: a recalibration that changes nothing triggers nothing downstream).
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by gmv-dagster".ljust(116)
    # Named by content: a later fit on other images never overwrites parameters still in use.
    final = path.with_name(f"{path.stem}-{hashlib.sha256(data).hexdigest()[:16]}{path.suffix}")
    return write_atomically(final, lambda tmp: tmp.write_bytes(bytes(data)))


@contextlib.contextmanager
def _offline_backbones():
    """pyiqa builds some backbones with timm pretrained=True (a hub download); the full
    checkpoint we load afterwards overwrites those weights, so build them empty."""
    import timm

    original = timm.create_model

    def create_model(*args, **kwargs):
        kwargs["pretrained"] = False
        return original(*args, **kwargs)

    timm.create_model = create_model
    try:
        yield
    finally:
        timm.create_model = original


def _create_pyiqa(metric: str, device, weights_path: str | None):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # else a hub lookup retries for about 50 s
    import pyiqa

    if metric in WEIGHTED_METRICS:
        if not weights_path or not Path(weights_path).is_file():
            raise WeightsNotFoundError(
                f"quality metric {metric} needs its weights file (quality weights_path={weights_path!r} "
                f"does not exist). Provide the {WEIGHTED_METRICS[metric]} as a local file; nothing is "
                "downloaded at run time. The offline default is metric=niqe_refit."
            )
        kwargs = {"pretrained_model_path": weights_path}
        if metric == "topiq_nr":
            kwargs["backbone_pretrain"] = False
        with _offline_backbones():
            return pyiqa.create_metric(metric, device=device, **kwargs)
    if weights_path:  # niqe with refit parameters
        return pyiqa.create_metric(metric, device=device, pretrained_model_path=weights_path)
    return pyiqa.create_metric(metric, device=device)


@dataclass(frozen=True)
class Calibration:
    """A fitted scorer as data: the scorer is rebuilt from it without fitting again (one row of a table)."""

    metric: str
    good: float | None = None  # raw score of clean images (q = 1); None for `none`
    bad: float | None = None  # raw score of noise (q = 0)
    params_file: str | None = None  # niqe_refit's pristine model, or a learned metric's weights file
    params_sha256: str | None = None
    input_size: int = 224

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict) -> Calibration:
        """From a row of the quality_calibration table (which carries more columns than these)."""
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


def _raw_scorer(metric: str, params_file: str | None, input_size: int, device, batch_size: int):
    if metric == "niqe_refit":
        net, size = _create_pyiqa("niqe", device, params_file), NIQE_SIZE
    else:
        net, size = _create_pyiqa(metric, device, params_file), input_size
    return lambda images, done=None: _pyiqa_scores(net, images, size, device, batch_size, done)


def calibrate(
    metric: str,
    reference: list[np.ndarray],
    device: torch.device | str = "cpu",
    seed: int = 0,
    work_dir: Path | None = None,
    weights_path: str | None = None,
    input_size: int = 224,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> Calibration:
    """Fit the scorer and anchor its mapping on `reference` (training) images.

    For niqe_refit, 80% of `reference` fits the pristine model (saved under `work_dir`, named by its
    content) and 20% anchors q = 1. `progress(n, total)` after each n of the `total` images it scores
    (the anchor images twice: clean and as noise).
    """
    if metric not in METRICS:
        raise ValueError(f"quality metric must be one of {METRICS}, got {metric!r}")
    if metric == "none":
        return Calibration("none")
    if len(reference) < 10:
        raise ValueError(f"quality calibration needs at least 10 reference images, got {len(reference)}")
    split = int(len(reference) * 0.8) if metric == "niqe_refit" else 0
    anchor_set = reference[split:]
    done = _counting(progress, split + 2 * len(anchor_set))
    if metric == "niqe_refit":
        params_file = str(fit_niqe_params(reference[:split], (work_dir or Path(".")) / "niqe_refit.mat", done))
    else:
        params_file = weights_path if metric in WEIGHTED_METRICS else None  # piqe has none
    raw_score = _raw_scorer(metric, params_file, input_size, device, batch_size)
    return Calibration(
        metric, good=float(np.median(raw_score(anchor_set, done))),
        bad=float(np.median(raw_score(noise_like(anchor_set, seed), done))),
        params_file=params_file, params_sha256=sha256_file(Path(params_file)) if params_file else None,
        input_size=input_size,
    )


def load_quality_model(calibration: Calibration, device: torch.device | str = "cpu", batch_size: int = 64) -> QualityModel:
    """The scorer a calibration describes; refuses a parameters file that changed since it was fitted."""
    c = calibration
    if c.metric == "none":
        return QualityModel("none", lambda images, done=None: np.ones(len(images)), None)
    if c.params_file and (not Path(c.params_file).is_file() or sha256_file(Path(c.params_file)) != c.params_sha256):
        raise ValueError(f"quality parameters {c.params_file} are missing or changed since calibration "
                         f"(sha256 {c.params_sha256}): rematerialise quality_calibration")
    return QualityModel(c.metric, _raw_scorer(c.metric, c.params_file, c.input_size, device, batch_size),
                        AnchoredMapping(c.good, c.bad), c.params_file, c.params_sha256)
