"""Quality against references: a generated image's detail, noise and JPEG blocking beside its matched training images.

A no-reference score fitted to the training images learns what they look like, smooth crops included, so it ranks
blur level with clean images on photos and calls a clean flat-colour drawing undefined (docs/DESIGN.md, "Quality").
A generated image's matches are references no such score has: it should show the detail of the images it came from,
without more noise or blocking than they have. Three statistics of the luminance at the image's own size, each a
logarithm so that a difference is a ratio:

- detail D = log(1 + mean squared 4-neighbour Laplacian): blur lowers it by 2 to 6 (sigma 2 px), noise raises it (a
  floor of 20, the Laplacian energy of noise of sd 1, spared smooth photo tiles' JPEG copies but cost the tuning
  domains' blur AUC 0.98 -> 0.94: not taken);
- noise N = 1/2 log(floor + the 10th percentile over 4x4-px cells of the finest diagonal Haar energy, averaged over
  the colour planes): the noise of the image's smoothest parts, where content does not hide it; the floor (5 grey
  levels, squared) keeps a perfectly flat source from turning a trace of noise into a large ratio;
- blocking B = log((1 + mean |second difference| across 8-px block edges) / (1 + the same elsewhere)) + 0.3 x the
  log-odds that an AC coefficient of an 8x8 block's DCT is near 0: JPEG's grid, and what its quantisation removes.

The departure of image j from its references R_j (its top matches as near to it as the nearest: within
reference_ratio x the nearest's distance; resized to its size where sizes differ): blur_j = min over r of
(D_r - D_j), noise_j = min over r of (N_j - N_r), blocking_j = min over r of (B_j - B_r): the most lenient reference
counts, so that a look-alike as near as the source never makes a clean copy of it look degraded, while a near-copy,
whose source is far nearer than any other match, is compared with its source alone (three references, each as
lenient as it could be, let a blurred photo tile pass as a smooth neighbouring tile). A reference's own statistics
count only inside the training set's fences (Tukey's: quartiles -/+ 1.5 interquartile ranges, and at least 0.5,
from a seeded sample of training images): a generated image that copies a noise image of the training set is noisy
all the same. Then q follows the worst departure,

    q_j = clip(1 - max(relu(blur_j - m_D) / s_D, relu(noise_j - m_N) / s_N, relu(blocking_j - m_B) / s_B), 0, 1),

1 when the image keeps its references' detail without more noise or blocking than they have, falling to 0 as it
departs (at 0 it hands out no credit, as the no-reference scorers' anchored mapping gives noise q = 0). The worst
departure, not their sum: a clean copy that a generator's resampling smoothed a little and its JPEG blocked a little
is not degraded twice over. Together the two took the photo domains' blur AUC from 0.88-0.91 to 0.96-0.97
(DetailParams). The margins m and scales s are ratios (log units) chosen on tuning domains
(bench/quality_domains.py).
Pure numpy, no torch: about 0.03 ms for a 28-px image.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..common.files import write_atomically
from ..sources.images import normalise_array_image

FEATURES = ("detail", "noise", "blocking")  # the statistics of one image
DEPARTURES = ("blur", "noise", "blocking")  # how far a generated image departs from its references, in those terms
NOISE_FLOOR = 25.0  # grey levels squared: sd 5
NOISE_CELL = 2  # Haar coefficients per cell side (4x4 px)
NOISE_PERCENTILE = 10.0
JPEG_BLOCK = 8
DCT_ZERO = 2.0  # grey levels: an AC coefficient below this counts as quantised away
DCT_WEIGHT = 0.3  # of the zeroed coefficients' log-odds in the blocking statistic (chosen on Fashion-MNIST's JPEGs)
FENCE_IQR = (
    1.5  # Tukey's fences (3, the far-out ones, let C3's planted digits excuse their copies: C3 AUC 0.81 vs 0.83)
)
FENCE_MIN = 0.5  # log units: at least this far beyond the quartiles (the noise statistic's quartiles can coincide at
# its floor, where 1.5 IQR would fence out every textured image)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class DetailParams:
    """Margins and scales of the three departures (log units): q = clip(1 - max relu(departure - margin) / scale, 0,
    1); and which of the top matches serve as references.

    Chosen by `bench/quality_domains.py --tune` on Fashion-MNIST (28 px) and crops of scikit-learn's two photos (48,
    64 px) only: among the grid points that give images blurred with sigma 3 a median q of 0 and leave clean images
    most of their credit, the one furthest from the AUC targets there (blur 0.95, noise 0.99, JPEG 0.90: the largest
    smallest lead), with the blur scale held at 2: a laxer blur penalty (3, which the rule picks when allowed) lets
    blurry generations of the demo's planted noise images keep credit (C3 AUC 0.837 -> 0.809). The rule and the
    grid, the worst departure against their sum, and the references' distance ratio against all three references were
    compared on the 256 and 512 px photo domains and the drawings, validation for those choices; the flat-colour and
    symbol domains saw no setting (their rows were printed beside, and would not have changed the choice). With
    the sum and all three references (the rule then took margins 0.25 / 0.4 / 0.3), photo blur AUC was 0.88-0.91;
    with the worst departure and near references, 0.96-0.97 (docs/RESULTS.md, "Quality in every domain")."""

    blur_margin: float = 0.1
    blur_scale: float = 2.0
    noise_margin: float = 0.4
    noise_scale: float = 0.25
    blocking_margin: float = 0.2
    blocking_scale: float = 2.0
    references: int = 3  # top matches that may serve as references
    # of those, the ones within this x the nearest's distance do: a near-copy's second match is 2-180x further than
    # its source in every domain of bench/quality_domains.py (1.5, 2 and 3 gave the same AUCs there within 0.003),
    # while the demo's novel samples keep 2.7 of 3 on average
    reference_ratio: float = 1.5

    def __post_init__(self) -> None:
        if not min(self.blur_scale, self.noise_scale, self.blocking_scale) > 0 or self.references < 1:
            raise ValueError(f"matched_detail needs scales > 0 and at least one reference, got {self}")
        if not self.reference_ratio >= 1:
            raise ValueError(
                f"matched_detail's reference_ratio must be >= 1 (the nearest match is a reference), got {self}"
            )

    def margins(self) -> np.ndarray:
        return np.array([self.blur_margin, self.noise_margin, self.blocking_margin])

    def scales(self) -> np.ndarray:
        return np.array([self.blur_scale, self.noise_scale, self.blocking_scale])


@dataclass(frozen=True)
class Fences:
    """Per statistic, the range of the training images' values inside which a reference's value counts."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    @classmethod
    def fit(cls, features: np.ndarray) -> Fences:
        """Tukey's fences (quartiles -/+ FENCE_IQR interquartile ranges, at least FENCE_MIN) of `features` (n, 3)."""
        if len(features) < 4:
            raise ValueError(
                f"the quality fences need the statistics of at least 4 training images, got {len(features)}"
            )
        features = features[~np.isnan(features).any(axis=1)]
        if len(features) < 4:
            raise ValueError(
                "the quality fences need the statistics of at least 4 training images of at least 4 x 4 px"
            )
        q1, q3 = np.percentile(features, [25, 75], axis=0)
        spread = np.maximum(FENCE_IQR * (q3 - q1), FENCE_MIN)
        return cls(tuple(map(float, q1 - spread)), tuple(map(float, q3 + spread)))

    def clip(self, features: np.ndarray) -> np.ndarray:
        return np.clip(features, self.low, self.high)


def luminance(image: np.ndarray) -> np.ndarray:
    """float32 luminance (H, W) of a uint8 grey (H, W[, 1]) or colour (H, W, 3|4) image (ITU-R 601, as PIL's L)."""
    a = np.asarray(image)
    if a.ndim == 3:
        a = a[..., 0] if a.shape[2] == 1 else a[..., :3].astype(np.float32) @ _LUMA
    return a.astype(np.float32, copy=False)


def detail_features(image: np.ndarray) -> np.ndarray:
    """(detail, noise, blocking) of one image (module docstring); finite for any image of at least 4 x 4 px. Arrays
    are first brought to the uint8 H x W / H x W x 3 form files load as (sources.images.normalise_array_image)."""
    image = normalise_array_image(image)
    y = luminance(image)
    h, w = y.shape
    if h < 4 or w < 4:
        raise ValueError(f"quality statistics need an image of at least 4 x 4 px, got {w} x {h}")
    lap = y[1:-1, 1:-1] * np.float32(4.0)
    lap -= y[:-2, 1:-1]
    lap -= y[2:, 1:-1]
    lap -= y[1:-1, :-2]
    lap -= y[1:-1, 2:]
    flat = lap.ravel()
    detail = np.log1p(float(np.dot(flat.astype(np.float64), flat)) / flat.size)  # a float64 sum: the same on any BLAS
    a = np.asarray(image)
    cells = _diagonal_energy(a[..., 0] if a.ndim == 3 and a.shape[2] == 1 else a[..., :3] if a.ndim == 3 else a)
    k = int(round(NOISE_PERCENTILE / 100 * (cells.size - 1)))
    # a sort, not np.partition: smooth images have many equal cells (0 on flat regions), where introselect degrades
    # (a 256-px photo tile: 0.29 ms against 0.02)
    noise = 0.5 * np.log(NOISE_FLOOR + float(np.sort(cells)[k]))
    return np.array([detail, noise, _blocking(y)])


def _diagonal_energy(image: np.ndarray) -> np.ndarray:
    """Mean squared finest diagonal Haar coefficient per NOISE_CELL x NOISE_CELL cell of coefficients, averaged over
    the planes of an (H, W) or (H, W, C) image: per colour plane, where independent noise is not averaged down as
    it is in the luminance (noise sd 25 on 48-px photo crops: AUC 0.998 per plane, 0.954 on the luminance). uint8
    pixels are differenced in int16 (exact, and twice as fast as float32 here)."""
    a = np.asarray(image)
    a = a.astype(np.int16 if a.dtype == np.uint8 else np.float32)
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    hh = (a[0:h:2, 0:w:2] - a[0:h:2, 1:w:2] - a[1:h:2, 0:w:2] + a[1:h:2, 1:w:2]).astype(np.float32)
    planes = 1 if hh.ndim == 2 else hh.shape[2]
    energy = hh * hh if hh.ndim == 2 else np.einsum("ijc,ijc->ij", hh, hh)
    c = NOISE_CELL
    ch, cw = energy.shape[0] // c, energy.shape[1] // c
    energy = energy[: ch * c, : cw * c]
    cells = sum(energy[i::c, j::c] for i in range(c) for j in range(c)).ravel()  # strided sums: 3x a reshaped mean
    # the coefficient is half the signed sum (its square a quarter), averaged over the cell and the planes
    return cells * np.float32(0.25 / (c * c * planes))


def _blocking(y: np.ndarray) -> float:
    """log((1 + curvature across 8-px block edges) / (1 + curvature elsewhere)), both axes: the mean |second
    difference| where it straddles an edge of JPEG's grid against everywhere else (a step between two flat blocks is
    curvature at the edge and none inside; measured better than first differences on 28-px JPEGs)."""
    edge = rest = 0.0
    for axis in (1, 0):
        a = y if axis == 1 else y.T
        d2 = a[:, 2:] + a[:, :-2]
        d2 -= a[:, 1:-1] * np.float32(2.0)
        columns = np.abs(d2, out=d2).sum(axis=0, dtype=np.float64)  # column c is centred on pixel column c + 1
        on = np.zeros(columns.size, bool)
        at = np.arange(JPEG_BLOCK - 2, columns.size - 1, JPEG_BLOCK)  # the two centred on either side of an edge
        on[at], on[at + 1] = True, True
        if on.all() or not on.any():
            continue
        edge += columns[on].sum() / (on.sum() * a.shape[0])
        rest += columns[~on].sum() / ((~on).sum() * a.shape[0])
    return float(np.log((1.0 + edge) / (1.0 + rest))) + DCT_WEIGHT * _zeroed_coefficients(y)


def _zeroed_coefficients(y: np.ndarray) -> float:
    """log-odds that an AC coefficient of the 8x8 DCT of a block of JPEG's grid is below DCT_ZERO in magnitude: JPEG
    at quality 15 or less quantises most of them to 0 (on 28-px images, where the grid has 3 blocks a side, this
    lifts the JPEG-15 AUC from 0.84 to 0.91 beside the curvature at the edges)."""
    b = JPEG_BLOCK
    h, w = y.shape[0] // b * b, y.shape[1] // b * b
    if not h or not w:
        return 0.0
    # separable: along each block's rows, then its columns, as two large matrix products
    rows = (_DCT @ y[:h, :w].reshape(h // b, b, w)).reshape(h // b, b, w // b, b)
    coefficients = np.abs(rows @ _DCT.T)  # (block row, u, block column, v)
    small = np.count_nonzero(coefficients < DCT_ZERO) - np.count_nonzero(coefficients[:, 0, :, 0] < DCT_ZERO)
    small /= coefficients.size - coefficients[:, 0, :, 0].size
    return float(np.log((small + 0.01) / (1.0 - small + 0.01)))


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)
    m = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    m[0] /= np.sqrt(2.0)
    return m.astype(np.float32)


_DCT = _dct_matrix(JPEG_BLOCK)  # orthonormal DCT-II, JPEG's


def features_or_nan(image: np.ndarray) -> np.ndarray:
    """detail_features, or NaN for an image too small to measure (under 4 x 4 px): its q is 0, with a note."""
    h, w = np.asarray(image).shape[:2]
    return detail_features(image) if h >= 4 and w >= 4 else np.full(3, np.nan)


def fit_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`image` resized to (H, W) `shape` (bicubic, PIL), or as it is when it has that size already."""
    a = normalise_array_image(image)
    if a.shape[:2] == tuple(shape):
        return a
    from ..common.resample import resize  # PIL's pixels (an enlargement as compiled loops); loaded only when needed

    return resize(a, shape[1], shape[0], Image.BICUBIC)


def departures(generated: np.ndarray, references: np.ndarray, fences: Fences) -> np.ndarray:
    """(blur, noise, blocking) departures of generated images (m, 3) from their references (m, r, 3, NaN where a
    generated image has fewer), each against its most lenient reference, references clipped into `fences`; NaN for
    an image that could not be measured or has no measured reference."""
    ref = fences.clip(references)
    signed = np.stack(
        [ref[..., 0] - generated[:, None, 0], generated[:, None, 1] - ref[..., 1], generated[:, None, 2] - ref[..., 2]],
        axis=-1,
    )
    out = np.full(signed.shape[::2], np.nan)
    some = ~np.isnan(signed).all(axis=1).any(axis=1)  # an image none of whose references could be measured: NaN
    out[some] = np.nanmin(signed[some], axis=1)
    return out


def measure(
    images: Sequence[np.ndarray], done: Callable[[int], None] | None = None, chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """(sizes (n, 2): height, width; statistics (n, 3)) of `images`, read `chunk` at a time (a sequence that loads
    images on demand holds one chunk); `done(n)` after each chunk."""
    sizes, features = np.zeros((len(images), 2), np.int64), np.zeros((len(images), 3))
    for start in range(0, len(images), chunk):
        part = list(images[start : start + chunk])
        for i, image in enumerate(part):
            sizes[start + i] = np.asarray(image).shape[:2]
            features[start + i] = features_or_nan(image)
        if done is not None:
            done(len(part))
    return sizes, features


def raw_from_departures(dep: np.ndarray, params: DetailParams) -> np.ndarray:
    """The raw score max relu(departure - margin) / scale (the worst departure), >= 0: q = clip(1 - raw, 0, 1)
    (q_from_raw); NaN where a departure is NaN."""
    return (np.maximum(dep - params.margins(), 0.0) / params.scales()).max(axis=1)


def reference_counts(distances: np.ndarray, params: DetailParams) -> np.ndarray:
    """How many of each image's matches, best first, serve as its references: of the first `params.references`
    (distances (m, k) sorted along a row, NaN or inf where an image has fewer), those within `params.reference_ratio`
    x the nearest's distance (a negative nearest distance, cosine's rounding, counts as its magnitude). Sorted
    distances make them a prefix of the row."""
    d = np.asarray(distances, dtype=np.float64)[:, : params.references]
    if d.shape[1] == 0:
        return np.zeros(len(d), np.int64)
    nearest = d[:, :1]
    with np.errstate(invalid="ignore"):
        within = d <= nearest + (params.reference_ratio - 1.0) * np.abs(nearest)
    return np.cumprod(within, axis=1).sum(axis=1)


def q_from_raw(raw: np.ndarray) -> np.ndarray:
    """q = clip(1 - raw, 0, 1): 1 within the margins, 0 once the departures beyond them add up to their scales (as the
    no-reference scorers' anchored mapping gives uniform noise q = 0: such an image hands out no credit at all)."""
    return np.clip(1.0 - np.asarray(raw, dtype=np.float64), 0.0, 1.0)


def fit_params(
    images: Sequence[np.ndarray],
    path: Path,
    done: Callable[[int], None] | None = None,
    params: DetailParams | None = None,
) -> Path:
    """The fences of `images`' statistics and the margins and scales, saved as JSON (path-<sha>.json, named by
    content: an identical refit gives an identical file, and a refit never overwrites parameters still in use)."""
    fences = Fences.fit(measure(images, done)[1])
    body = json.dumps({"fences": asdict(fences), "params": asdict(params or DetailParams())}, sort_keys=True, indent=1)
    final = path.with_name(f"{path.stem}-{hashlib.sha256(body.encode()).hexdigest()[:16]}{path.suffix}")
    return write_atomically(final, lambda tmp: tmp.write_bytes(body.encode()))


def load_params(path: Path) -> tuple[Fences, DetailParams]:
    saved = json.loads(Path(path).read_text())
    fences = saved["fences"]
    return Fences(tuple(fences["low"]), tuple(fences["high"])), DetailParams(**saved["params"])


def reference_features(
    generated: Sequence[np.ndarray], references: Sequence[Sequence[np.ndarray]], memo: dict | None = None
) -> np.ndarray:
    """Statistics (m, r, 3) of each generated image's references at that image's size (NaN rows pad to r).

    A reference sequence that names its images (`uris`, as sources.images.ImageSequence does) is read and measured
    once per (uri, size) across calls sharing `memo`: generated images of a batch share many of their matches, and
    the pipeline fills `memo` beforehand with every training image's statistics at its own size (the
    training_details asset), so that a reference is read only where the generated image's size differs."""
    r = max((len(refs) for refs in references), default=0)
    out = np.full((len(generated), r, 3), np.nan)
    memo = {} if memo is None else memo
    for j, (image, refs) in enumerate(zip(generated, references)):
        shape = np.asarray(image).shape[:2]
        uris = getattr(refs, "uris", None)
        for i in range(len(refs)):
            key = (uris[i], shape) if uris is not None else None
            if key is None or key not in memo:
                features = features_or_nan(fit_to(refs[i], shape))
                if key is None:
                    out[j, i] = features
                    continue
                memo[key] = features
            out[j, i] = memo[key]
    return out
