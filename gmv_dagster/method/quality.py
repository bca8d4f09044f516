"""Quality q_j in [0, 1] (docs/DESIGN.md, method step 3).

The default, `matched_detail` (detail.py), compares each generated image with the training images it matched: q = 1
when it keeps their detail without more noise or JPEG blocking than they have, falling toward 0 as it departs.
Its raw score is the worst of its scaled departures, q = clip(1 - raw, 0, 1); it needs each generated image's
references (of its top `QualityModel.references` matches, those about as near as the nearest:
`QualityModel.reference_counts`).

The no-reference scorers give a raw score per image; a mapping anchored on the data turns it into q:
q = 1 at the median raw score of held-out training images (what "clean" looks like here),
q = 0 at the median raw score of uniform-noise images of the same size, linear between,
clipped to [0, 1]. The same formula serves lower-better and higher-better metrics. So q says how
much an image looks like the training data, not how good it is in absolute terms.

No-reference backends: `niqe_refit` (NIQE whose pristine model is refit on the training images, computed by
niqe.py in the project), pyiqa's `maniqa`, `topiq_nr`, `musiq` (local weights file), `piqe` (offline,
but it inverts on small images: see README), and `none` (q = 1, the ablation). An image a metric cannot
score (NIQE of a blank image: no block has local contrast) gets q = 0 and a note saying why.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..common.files import sha256_file
from ..common.sampling import chunks
from ..common.tensors import WeightsNotFoundError, has_colour, to_tensor_batch
from ..sources.images import ImageSequence
from . import detail, niqe

# Metrics that need a weights file, and where their authors publish it.
WEIGHTED_METRICS = {
    "maniqa": "MANIQA checkpoint (e.g. ckpt_koniq10k.pt from the MANIQA or pyiqa release)",
    "topiq_nr": "TOPIQ-NR checkpoint (cfanet_nr_koniq_res50-*.pth from the pyiqa release)",
    "musiq": "MUSIQ checkpoint (musiq_koniq_ckpt-*.pth from the pyiqa release)",
}
DEFAULT_METRIC = "matched_detail"
REFERENCE_SIZE = 1000  # training images that calibrate the scorer (a seeded sample)
METRICS = (DEFAULT_METRIC, "niqe_refit", "piqe", "none", *WEIGHTED_METRICS)
# NIQE measures blocks: an image is scaled (aspect kept) until its shorter side lies in [2, 4] blocks (cost grows
# with pixels; larger images keep their detail up to there instead of being squeezed to one size), then cropped
# around its centre to whole blocks. The block is pyiqa's 96 px by default. Smaller blocks are cheaper (48 px: a
# third of the time on 28-px images, ranking sigma-1 blur and noise as well) but lose heavy blur: on Fashion-MNIST
# a sigma-3 blur keeps a median q of 0.66 at 48 px and 0.53 at 64, against 0.00 at 96 (docs/PERFORMANCE.md).
# Scoring threads at most: each keeps its own scratch buffers (~40 MB at 192 px, more for larger images).
NIQE_MAX_THREADS = 8
# Images read at a time before their batches are scored (see _map_batches): at most this many batches, and about this
# many bytes of decoded pixels (a phase stops at the first batch that reaches it).
READ_PHASE_BATCHES = 16
READ_PHASE_BYTES = 256 * 2**20
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
    """A fitted scorer: raw scores, and q in [0, 1] through an anchored mapping (or q = clip(1 - raw, 0, 1) for
    matched_detail, which compares each image with its `references` top matches)."""

    metric: str
    raw_score: (
        Callable  # (images, done) -> raw scores; matched_detail: (images, done, references, measured) -> (parts, raw)
    )
    mapping: AnchoredMapping | None  # None: q = 1 (the `none` ablation), or clip(1 - raw) where `references` > 0
    params_file: str | None = None
    params_sha256: str | None = None
    niqe_block: int | None = None  # niqe_refit: the block size its parameters were fitted at
    references: int = 0  # matched training images each generated image is compared with; 0: no reference

    def score(
        self,
        images: Sequence[np.ndarray],
        progress: Callable[[int, int], None] | None = None,
        references: Sequence[Sequence[np.ndarray]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(raw scores, q): `score_parts` without the parts."""
        raw, q, _ = self.score_parts(images, progress, references)
        return raw, q

    def score_parts(
        self,
        images: Sequence[np.ndarray],
        progress: Callable[[int, int], None] | None = None,
        references: Sequence[Sequence[np.ndarray]] | None = None,
        measured: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(raw scores, q, parts); `progress(n, total)` after each n of the `total` images. `parts`: for
        matched_detail the (blur, noise, blocking) departures of each image from its references (detail.py), else None.

        `images` may be any sequence whose slices load images on demand (sources.images.ImageSequence): they are
        scored a batch at a time. `references[j]`: image j's top matched training images, best first (at least one;
        the first `self.references` count), required where `self.references` > 0 and ignored otherwise; `measured`:
        statistics already known, {(uri, (height, width)): (detail, noise, blocking)}, for references that name their
        uris (detail.reference_features). An image a no-reference metric cannot score (raw score NaN) gets q = 0: see
        `unscored`.
        """
        done = _counting(progress, len(images))
        if self.references:
            if references is None or len(references) != len(images):
                raise ValueError(
                    f"quality metric {self.metric} compares each generated image with its matched training "
                    "images: give references, one list per image"
                )
            parts, raw = self.raw_score(images, done, references, measured)
            return raw, np.where(np.isfinite(raw), detail.q_from_raw(raw), 0.0), parts
        raw = self.raw_score(images, done)
        q = np.ones(len(images)) if self.mapping is None else self.mapping(raw)
        return raw, np.where(np.isfinite(raw), q, 0.0), None

    def reference_counts(self, distances: np.ndarray) -> np.ndarray:
        """How many of each image's matches (distances (m, k), best first; NaN past an image's last) serve as its
        references, the first that many (detail.reference_counts); 0 for a metric that takes none."""
        if not self.references:
            return np.zeros(len(distances), np.int64)
        return detail.reference_counts(distances, self.raw_score.params)

    def reference_rows(self, rows: np.ndarray, distances: np.ndarray) -> list[np.ndarray]:
        """Per image, the training rows of its matches (rows, distances: (m, k), best first, -1 padding) that serve as
        its references (reference_counts); empty for a metric that takes none."""
        counts = self.reference_counts(np.where(rows >= 0, distances, np.inf))
        return [row[:c] for row, c in zip(rows, counts)]

    def unscored(self, raw: np.ndarray) -> list[str | None]:
        """Per image, why it has no score (q = 0), or None: the note stored beside q."""
        why = {"niqe_refit": UNSCORED_NIQE, DEFAULT_METRIC: UNSCORED_DETAIL}.get(
            self.metric, f"{self.metric} gave no finite score"
        ) + "; q = 0"
        return [None if np.isfinite(r) else why for r in raw]

    def describe(self) -> dict:
        out = {"metric": self.metric, "params_file": self.params_file, "params_sha256": self.params_sha256}
        if self.references:
            out.update(references=self.references, reference_ratio=self.raw_score.params.reference_ratio)
        if self.mapping is not None:
            out.update(anchor_clean=self.mapping.good, anchor_noise=self.mapping.bad)
        if self.niqe_block is not None:
            out.update(niqe_block=self.niqe_block)
        return out


UNSCORED_DETAIL = "matched_detail cannot measure an image under 4 x 4 px (the image or all its references)"
UNSCORED_NIQE = (
    "NIQE undefined: no block of the image has local contrast in every plane NIQE reads (a blank image,"
    " or a grey image scored against a colour training set)"
)


class NoiseLike(Sequence):
    """Uniform-noise images of the shapes of `images`, image i drawn from the seed (seed, i): the same noise
    whichever slices are asked for, so the q = 0 anchor does not depend on the batch size."""

    def __init__(self, images: Sequence[np.ndarray], seed: int):
        self.images, self.seed = images, seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        if isinstance(index, slice):
            rows = range(*index.indices(len(self)))
            return [self._noise(i, img) for i, img in zip(rows, self.images[index])]
        return self._noise(index, self.images[index])

    def _noise(self, i: int, image: np.ndarray) -> np.ndarray:
        return np.random.default_rng([self.seed, i]).integers(0, 256, size=image.shape, dtype=np.uint8)


def calibration_split(n: int, seed: int, share: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, anchor rows) of `n` reference images: a seeded shuffle, then `share` to fit and the rest to anchor.

    Shuffled because reference samples come sorted (by id, so by class for folder sources): a plain cut would fit
    the pristine model on the first classes and anchor q = 1 on the last, which the model never saw.
    """
    order = np.random.default_rng(seed).permutation(n)
    cut = int(n * share)
    return np.sort(order[:cut]), np.sort(order[cut:])


def _counting(progress: Callable[[int, int], None] | None, total: int | None) -> Callable[[int], None] | None:
    return None if progress is None else lambda n: progress(n, total)


def _pyiqa_scores(
    metric, images: list[np.ndarray], size: int, device, batch_size: int, done: Callable[[int], None] | None = None
) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for chunk in chunks(images, batch_size):
            x = to_tensor_batch(chunk, size, 3, UPSAMPLE).to(device)
            out.append(metric(x).reshape(-1).double().cpu().numpy())
            if done is not None:
                done(len(chunk))
    return np.concatenate(out) if out else np.empty(0)


def niqe_input(image: np.ndarray, block: int = niqe.BLOCK, grey_as_luminance: bool = False) -> np.ndarray:
    """The uint8 image NIQE reads at `block`: scaled bicubically (aspect kept) so that its shorter side lies in
    [2 block, 4 block], then cropped around its centre to a whole number of blocks. RGB, or with
    `grey_as_luminance` a grey image as one plane (H, W): its luminance already, and a third of the work."""
    h, w = image.shape[:2]
    short, low = min(h, w), 2 * block
    scale = min(max(short, low), 4 * block) / short
    size = (max(low, round(w * scale)), max(low, round(h * scale)))
    mode = "L" if grey_as_luminance and not has_colour(image) else "RGB"
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.shape[2:] != ({"L": (), "RGB": (3,)}[mode]):
        arr = np.asarray(Image.fromarray(arr).convert(mode))
    if size != (w, h):
        # PIL's pixels; an enlargement (shorter side under 4 blocks) as a compiled loop, 7x faster
        from ..common.resample import resize

        arr = resize(arr, *size, UPSAMPLE)
    ch, cw = arr.shape[0] // block * block, arr.shape[1] // block * block
    top, left = (arr.shape[0] - ch) // 2, (arr.shape[1] - cw) // 2
    return arr[top : top + ch, left : left + cw]


def _niqe_planes(images: list[np.ndarray], device, colour: bool, block: int):
    """(rows, planes (B, P, H, W)) per group of equally sized working images of `images`: luminance (P = 1), or
    Y, Cb, Cr for a colour model (P = 3)."""
    to_planes = niqe.colour_planes if colour else niqe.y_channel
    prepared = [niqe_input(img, block, grey_as_luminance=not colour) for img in images]
    shapes: dict[tuple, list[int]] = {}
    for i, arr in enumerate(prepared):
        shapes.setdefault(arr.shape, []).append(i)
    for rows in shapes.values():
        batch = torch.from_numpy(np.stack([prepared[i] for i in rows])).to(device)
        if batch.ndim == 3:  # grey, for the luminance model: the plane is the luminance (pyiqa's Y of R = G = B),
            yield rows, batch[:, None]  # uint8, which NIQE's compiled loops read as it is (niqe.KERNEL_DTYPES)
        else:
            yield rows, to_planes(batch.permute(0, 3, 1, 2).to(torch.float32) / 255.0)


def _map_batches(
    images: Sequence[np.ndarray],
    batch_size: int,
    fn: Callable[[list[np.ndarray]], np.ndarray],
    device,
    done: Callable[[int], None] | None,
) -> list[np.ndarray]:
    """[fn(batch) for each `batch_size` slice of `images`], in order.

    On a CPU the batches run on as many threads as torch has (at most NIQE_MAX_THREADS), torch single-threaded inside
    each, also when there is only one batch: NIQE's ops are too small for torch's intra-op threads (two were slower
    than one on 2 cores), whole batches side by side are faster (measured, docs/PERFORMANCE.md), and each image's
    result is the same bits whatever the batch size or core count (a multi-threaded bmm would not be). Images are
    read in phases, on the calling thread, while no batch runs: up to READ_PHASE_BATCHES batches or READ_PHASE_BYTES
    of decoded pixels, but at least a batch per thread (memory stays bounded), then that phase's batches run side by
    side. Decoding files beside the
    scoring threads fought them for the GIL: it cost twice what it costs alone (0.20 against 0.10 ms per 28-px PNG,
    measured). `done(n)` after each batch, in order, from the calling thread.
    """
    starts = range(0, len(images), batch_size)
    cpu = torch.device(device).type == "cpu"
    workers = min(torch.get_num_threads(), NIQE_MAX_THREADS, len(starts)) if cpu else 1
    out: list[np.ndarray] = []
    threads = torch.get_num_threads()
    if cpu:
        torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max(workers, 1)) as pool:
            at = 0
            while at < len(starts):
                phase, size = [], 0
                # at least a batch per worker, so that large images do not leave threads idle
                while (
                    at < len(starts)
                    and len(phase) < READ_PHASE_BATCHES
                    and (size < READ_PHASE_BYTES or len(phase) < workers)
                ):
                    phase.append(list(images[starts[at] : starts[at] + batch_size]))
                    size += sum(np.asarray(image).nbytes for image in phase[-1])
                    at += 1
                results = map(fn, phase) if workers <= 1 else pool.map(fn, phase)
                for batch, result in zip(phase, results):
                    out.append(result)
                    if done is not None:
                        done(len(batch))
    finally:
        torch.set_num_threads(threads)
    return out


def niqe_features(
    images: Sequence[np.ndarray],
    colour: bool,
    block: int = niqe.BLOCK,
    batch_size: int = 64,
    device="cpu",
    done: Callable[[int], None] | None = None,
) -> np.ndarray:
    """NIQE's features of every `block`-px block at two scales of every image (rows of all images end to end): 36
    per block, or 108 (Y, Cb, Cr) for `colour`."""
    tables, local = niqe.NiqeTables.build(torch.device(device)), threading.local()

    def features(batch: list[np.ndarray]) -> np.ndarray:
        if not hasattr(local, "workspace"):
            local.workspace = niqe.Workspace(torch.device(device))
        feats = [
            niqe.plane_features(p, block, tables=tables, workspace=local.workspace)
            .reshape(-1, p.shape[1] * niqe.FEATURES)
            .cpu()
            .numpy()
            for _, p in _niqe_planes(batch, device, colour, block)
        ]
        return np.concatenate(feats)

    feats = _map_batches(images, batch_size, features, device, done)
    return np.concatenate(feats) if feats else np.empty((0, (3 if colour else 1) * niqe.FEATURES))


def fit_niqe_params(
    images: Sequence[np.ndarray],
    path: Path,
    done: Callable[[int], None] | None = None,
    device="cpu",
    block: int = niqe.BLOCK,
) -> Path:
    """Refit NIQE's pristine multivariate Gaussian on the `block`-px blocks of `images` and save it
    (path-<sha>.mat, pyiqa's format, with the block size).

    Colour-aware: if any of `images` has colour, the model is NIQE's colour variant (luminance and chroma
    planes, 108 features; see niqe.colour_planes), else pyiqa's NIQE on luminance (36). The file's shape says
    which. Named by content: a later fit on other images never overwrites parameters still in use, and an identical
    refit gives an identical file (the MAT header is fixed text), so a recalibration that changes nothing triggers
    nothing.
    """
    colour = any(has_colour(img) for part in chunks(images, 256) for img in part)  # stops at the first colour
    try:
        mu, cov = niqe.fit_pristine(niqe_features(images, colour, block, device=device, done=done))
    except ValueError as e:  # too few blocks: say which setting gives more
        raise ValueError(
            f"quality calibration on {len(images)} {'colour ' if colour else ''}reference images (about 4 "
            f"{block}-px blocks per small image): {e}. Raise quality_calibration's reference_size (fit on 80% of "
            "it), or use more training images"
        ) from e
    tmp = niqe.save_pristine(path.with_name(f".{path.stem}.fit{os.getpid()}{path.suffix}"), mu, cov, block)
    final = path.with_name(f"{path.stem}-{sha256_file(tmp)[:16]}{path.suffix}")
    os.replace(tmp, final)
    return final


class _NiqeScorer:
    """Raw NIQE of images with a refit pristine model (luminance or colour, as the model), on a device; NaN for an
    image with no scorable block. One model per thread (its scratch buffers), batches side by side (_map_batches)."""

    def __init__(self, params_file: str, device, batch_size: int):
        self.scorer = niqe.NiqeScorer.from_file(params_file, device)  # loads NIQE's compiled loops on a CPU
        from ..common.resample import enlarge

        enlarge(np.zeros((2, 2), np.uint8), 4, 4, UPSAMPLE)  # the working image's, on any device: loaded here, once
        self.device, self.batch_size = device, batch_size
        self.local = threading.local()
        self.local.scorer = self.scorer  # the constructing thread's; other threads get their own copy

    def _score(self, batch: list[np.ndarray]) -> np.ndarray:
        if not hasattr(self.local, "scorer"):
            self.local.scorer = niqe.NiqeScorer(self.scorer.mu, self.scorer.cov, self.scorer.device, self.scorer.block)
        scorer, out = self.local.scorer, np.empty(len(batch))
        with torch.inference_mode():  # per thread: the mode is thread-local
            for rows, planes in _niqe_planes(batch, self.device, scorer.planes == 3, scorer.block):
                out[rows] = scorer.score(planes).cpu().numpy()
        return out

    def __call__(self, images: Sequence[np.ndarray], done: Callable[[int], None] | None = None) -> np.ndarray:
        scores = _map_batches(images, self.batch_size, self._score, self.device, done)
        return np.concatenate(scores) if scores else np.empty(0)


DETAIL_BATCH = 1024  # generated images read at a time by matched_detail


class _DetailScorer:
    """matched_detail: each image's departures from its references, and the raw score (detail.py)."""

    def __init__(self, params_file: str):
        self.fences, self.params = detail.load_params(Path(params_file))

    def __call__(
        self,
        images: Sequence[np.ndarray],
        done: Callable[[int], None] | None,
        references: Sequence[Sequence[np.ndarray]],
        measured: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        parts, memo, top = np.empty((len(images), 3)), dict(measured or {}), self.params.references
        for start in range(0, len(images), DETAIL_BATCH):
            batch = list(images[start : start + DETAIL_BATCH])
            refs = [
                r[:top] if getattr(r, "uris", None) is None else ImageSequence(r.uris[:top])
                for r in references[start : start + len(batch)]
            ]
            gen = np.stack([detail.features_or_nan(image) for image in batch]) if batch else np.empty((0, 3))
            parts[start : start + len(batch)] = detail.departures(
                gen, detail.reference_features(batch, refs, memo), self.fences
            )
            if done is not None:
                done(len(batch))
        return parts, detail.raw_from_departures(parts, self.params)


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
    return pyiqa.create_metric(metric, device=device)


@dataclass(frozen=True)
class Calibration:
    """A fitted scorer as data: the scorer is rebuilt from it without fitting again (one row of a table)."""

    metric: str
    good: float | None = None  # raw score of clean images (q = 1); None for `none` and matched_detail (no anchors)
    bad: float | None = None  # raw score of noise (q = 0)
    params_file: str | None = None  # matched_detail's fences (JSON), niqe_refit's pristine model, or a weights file
    params_sha256: str | None = None
    input_size: int = 224
    niqe_block: int | None = None  # niqe_refit: the block size NIQE read

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict) -> Calibration:
        """From a row of the quality_calibration table (which carries more columns than these; a table written
        before a field existed lacks it: its default)."""
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})


def _raw_scorer(metric: str, params_file: str | None, input_size: int, device, batch_size: int):
    if metric == DEFAULT_METRIC:
        return _DetailScorer(params_file)
    if metric == "niqe_refit":
        return _NiqeScorer(params_file, device, batch_size)
    net = _create_pyiqa(metric, device, params_file)
    return lambda images, done=None: _pyiqa_scores(net, images, input_size, device, batch_size, done)


def calibrate(
    metric: str,
    reference: Sequence[np.ndarray],
    device: torch.device | str = "cpu",
    seed: int = 0,
    work_dir: Path | None = None,
    weights_path: str | None = None,
    input_size: int = 224,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
    niqe_block: int = niqe.BLOCK,
) -> Calibration:
    """Fit the scorer and anchor its mapping on `reference` (training) images.

    For matched_detail, the statistics of every `reference` image set the fences inside which a reference counts
    (detail.py; saved under `work_dir`, named by content); nothing is anchored. For niqe_refit, a seeded 80% of
    `reference` fits the pristine model (saved under `work_dir`, named by its content) and the other 20% anchors
    q = 1 (calibration_split); NIQE reads `niqe_block`-px blocks (pyiqa's 96 by default).
    `progress(n, total)` after each n of the `total` images it scores (niqe_refit: the anchor images twice, clean and as
    noise).
    `reference` may load lazily.
    """
    if metric not in METRICS:
        raise ValueError(f"quality metric must be one of {METRICS}, got {metric!r}")
    if metric == "none":
        return Calibration("none")
    if len(reference) < 10:
        raise ValueError(f"quality calibration needs at least 10 reference images, got {len(reference)}")
    if metric == DEFAULT_METRIC:
        params_file = str(
            detail.fit_params(
                reference, (work_dir or Path(".")) / f"{metric}.json", _counting(progress, len(reference))
            )
        )
        return Calibration(metric, params_file=params_file, params_sha256=sha256_file(Path(params_file)))
    fit_rows, anchor_rows = (
        calibration_split(len(reference), seed) if metric == "niqe_refit" else ([], range(len(reference)))
    )
    anchor_set = _Rows(reference, anchor_rows)
    done = _counting(progress, len(fit_rows) + 2 * len(anchor_set))
    if metric == "niqe_refit":
        params_file = str(
            fit_niqe_params(
                _Rows(reference, fit_rows), (work_dir or Path(".")) / "niqe_refit.mat", done, device, niqe_block
            )
        )
    else:
        params_file = weights_path if metric in WEIGHTED_METRICS else None  # piqe has none
    raw_score = _raw_scorer(metric, params_file, input_size, device, batch_size)
    return Calibration(
        metric,
        good=_median_finite(raw_score(anchor_set, done), "reference images"),
        bad=float(np.median(raw_score(NoiseLike(anchor_set, seed), done))),
        params_file=params_file,
        params_sha256=sha256_file(Path(params_file)) if params_file else None,
        input_size=input_size,
        niqe_block=niqe_block if metric == "niqe_refit" else None,
    )


class _Rows(Sequence):
    """The rows `rows` of a sequence, sliced lazily (a sequence that loads images loads only what is asked)."""

    def __init__(self, items: Sequence, rows):
        self.items, self.rows = items, list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            picked = self.rows[index]
            if picked and picked == list(range(picked[0], picked[-1] + 1)):
                return list(self.items[picked[0] : picked[-1] + 1])  # one contiguous read
            return [self.items[i] for i in picked]
        return self.items[self.rows[index]]


def _median_finite(raw: np.ndarray, what: str) -> float:
    finite = raw[np.isfinite(raw)]
    if not len(finite):
        raise ValueError(f"quality calibration: no {what} could be scored (all blank?): check the training images")
    return float(np.median(finite))


def load_quality_model(
    calibration: Calibration, device: torch.device | str = "cpu", batch_size: int = 64
) -> QualityModel:
    """The scorer a calibration describes; refuses a parameters file that changed since it was fitted."""
    c = calibration
    if c.metric == "none":
        return QualityModel("none", lambda images, done=None: np.ones(len(images)), None)
    if c.params_file and (not Path(c.params_file).is_file() or sha256_file(Path(c.params_file)) != c.params_sha256):
        raise ValueError(
            f"quality parameters {c.params_file} are missing or changed since calibration "
            f"(sha256 {c.params_sha256}): rematerialise quality_calibration"
        )
    raw_score = _raw_scorer(c.metric, c.params_file, c.input_size, device, batch_size)
    if isinstance(raw_score, _DetailScorer):
        return QualityModel(
            c.metric, raw_score, None, c.params_file, c.params_sha256, references=raw_score.params.references
        )
    return QualityModel(
        c.metric,
        raw_score,
        AnchoredMapping(c.good, c.bad),
        c.params_file,
        c.params_sha256,
        raw_score.scorer.block if isinstance(raw_score, _NiqeScorer) else None,
    )
