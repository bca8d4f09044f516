"""Near-copy benchmarks: "generated" images that are perturbed copies of known training images.

A near-copy models how a generator's output departs from a memorised source: a shift of
1-3 px, a rescale and a rotation of a few percent / degrees, a brightness, contrast (and,
for colour, saturation and per-channel) change, then Gaussian noise or JPEG compression.
`strength` scales every perturbation (1.0 = the default mix; 0.5 milder, 1.5 stronger);
shifts are whole pixels at the image's own size: up to 1 px at strength 0.5, 2 at 1.0, 3 at
1.5 and above (at least 1 px at any strength > 0).

Everything is drawn from the `numpy.random.Generator` passed in (or the seed), so a set is
bit-identical for the same inputs. Imports nothing from the project.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["DEFAULT_STRENGTHS", "blend", "near_copy", "near_copy_set", "photo_crops", "transformed_copy"]

DEFAULT_STRENGTHS: tuple[float, ...] = (0.5, 1.0, 1.5)


def _as_uint8_image(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise ValueError(f"near_copy wants uint8 images, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        raise ValueError(f"near_copy wants HxW or HxWx3 images, got shape {a.shape}")
    return a


def _geometric(a: np.ndarray, dx: float, dy: float, scale: float, angle_deg: float) -> np.ndarray:
    """Shift (px), scale and rotate about the centre; the border is reflected, never black-filled."""
    h, w = a.shape[:2]
    m = math.ceil(max(abs(dx), abs(dy)) + 0.15 * max(h, w)) + 2
    pad = ((m, m), (m, m)) + (((0, 0),) if a.ndim == 3 else ())
    padded = np.pad(a, pad, mode="reflect" if min(h, w) > m else "edge")
    H, W = padded.shape[:2]
    cx, cy = (W - 1) / 2.0, (H - 1) / 2.0
    t = math.radians(angle_deg)
    cos, sin = math.cos(t) / scale, math.sin(t) / scale
    # PIL's affine maps output (x, y) to input (a x + b y + c, d x + e y + f): the inverse transform.
    a_, b_ = cos, sin
    d_, e_ = -sin, cos
    c_ = cx - a_ * (cx + dx) - b_ * (cy + dy)
    f_ = cy - d_ * (cx + dx) - e_ * (cy + dy)
    img = Image.fromarray(padded)
    out = img.transform((W, H), Image.AFFINE, (a_, b_, c_, d_, e_, f_), resample=Image.BICUBIC)
    return np.asarray(out)[m : m + h, m : m + w]


def _jpeg(a: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = np.asarray(Image.open(buf).convert("RGB" if a.ndim == 3 else "L"))
    return out.copy()


def near_copy(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """One perturbed copy of `image` (uint8 HxW or HxWx3; same shape and dtype out).

    At strength s: shift of 0..clip(round(2 s), 1, 3) px on each axis (random signs, at
    least one axis non-zero: 1-3 px), scale 1 +- 0.04 s, rotation +- 3 s degrees, brightness
    +- 0.08 s (of full range), contrast x(1 +- 0.15 s), for colour saturation x(1 +- 0.2 s) and per-channel
    gains 1 +- 0.04 s; then either Gaussian noise (sigma 2..8 s grey levels) or JPEG
    (quality 95 - 35 s .. 95 - 15 s), half each.
    """
    a = _as_uint8_image(image)
    s = float(strength)
    if s < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    colour = a.ndim == 3
    max_shift = int(min(3, max(1, round(2 * s)))) if s > 0 else 0
    if max_shift:
        shifts = rng.integers(0, max_shift + 1, size=2) * rng.choice([-1, 1], size=2)
        if shifts[0] == 0 and shifts[1] == 0:
            shifts[rng.integers(0, 2)] = rng.choice([-1, 1]) * rng.integers(1, max_shift + 1)
    else:
        shifts = np.zeros(2, dtype=np.int64)
    scale = 1.0 + rng.uniform(-0.04, 0.04) * s
    angle = rng.uniform(-3.0, 3.0) * s
    brightness = rng.uniform(-0.08, 0.08) * s * 255.0
    contrast = 1.0 + rng.uniform(-0.15, 0.15) * s
    saturation = 1.0 + rng.uniform(-0.2, 0.2) * s
    gains = 1.0 + rng.uniform(-0.04, 0.04, size=3) * s
    use_jpeg = bool(rng.random() < 0.5)
    sigma = rng.uniform(2.0, 8.0) * s
    quality = round(95 - rng.uniform(15.0, 35.0) * s)
    noise_seed = int(rng.integers(0, 2**63 - 1))

    x = _geometric(a, float(shifts[0]), float(shifts[1]), scale, angle).astype(np.float64)
    mean = x.mean()
    x = (x - mean) * contrast + mean + brightness
    if colour:
        grey = x.mean(axis=2, keepdims=True)
        x = (grey + (x - grey) * saturation) * gains[None, None, :]
    if use_jpeg and s > 0:
        out = _jpeg(np.clip(np.rint(x), 0, 255).astype(np.uint8), max(5, min(100, quality)))
    else:
        x = x + np.random.default_rng(noise_seed).normal(0.0, sigma, x.shape)
        out = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return out


def transformed_copy(
    image: np.ndarray,
    rng: np.random.Generator,
    rotation: tuple[float, float] = (2.0, 5.0),
    rescale: tuple[float, float] = (0.05, 0.10),
    jpeg_quality: tuple[int, int] = (40, 50),
) -> np.ndarray:
    """A copy rotated, rescaled and JPEG-compressed together, each drawn from its range: rotation |angle| in
    `rotation` degrees, scale 1 +- a fraction in `rescale` (either sign), then JPEG at a quality in `jpeg_quality`
    (inclusive); the border reflected, as near_copy's. What a generator's geometric drift does to a memorised image,
    beyond near_copy's default mix."""
    a = _as_uint8_image(image)
    angle = rng.uniform(*rotation) * rng.choice([-1.0, 1.0])
    scale = 1.0 + rng.uniform(*rescale) * rng.choice([-1.0, 1.0])
    quality = int(rng.integers(jpeg_quality[0], jpeg_quality[1] + 1))
    return _jpeg(np.clip(np.rint(_geometric(a, 0.0, 0.0, scale, angle)), 0, 255).astype(np.uint8), quality)


def blend(first: np.ndarray, second: np.ndarray, share: float) -> np.ndarray:
    """share x first + (1 - share) x second, rounded (uint8, same shape): the simplest image with two sources.
    The second is resized to the first's size where they differ."""
    a, b = _as_uint8_image(first), _as_uint8_image(second)
    if b.shape[:2] != a.shape[:2]:
        b = np.asarray(Image.fromarray(b).resize((a.shape[1], a.shape[0]), Image.BILINEAR))
    if a.ndim != b.ndim:  # one grey, one colour: both as colour
        a, b = (np.repeat(x[..., None], 3, axis=2) if x.ndim == 2 else x for x in (a, b))
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"a blend's share must be in [0, 1], got {share}")
    return np.clip(np.rint(share * a.astype(np.float64) + (1.0 - share) * b), 0, 255).astype(np.uint8)


def near_copy_set(
    images: Sequence[np.ndarray],
    n: int,
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """`n` near-copies of distinct training images (rows drawn without replacement when n <= len).

    Returns (copies, source_rows, strengths): source_rows[i] is the row of `images` that
    copies[i] was made from, strengths[i] the strength used (cycled through `strengths`).
    """
    if len(images) == 0:
        raise ValueError("near_copy_set: no images to copy")
    if not strengths:
        raise ValueError("near_copy_set: give at least one strength")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(images), size=n, replace=n > len(images)).astype(np.int64)
    levels = np.array([strengths[i % len(strengths)] for i in range(n)], dtype=np.float64)
    copies = [near_copy(images[int(r)], float(s), rng) for r, s in zip(rows, levels)]
    return copies, rows, levels


def photo_crops(
    n: int = 3000,
    size: int = 64,
    seed: int = 0,
    min_gap: int | None = None,
    min_std: float = 8.0,
    photos: Sequence[np.ndarray] | None = None,
    dihedral: bool = True,
) -> list[np.ndarray]:
    """`n` distinct colour crops (size x size x 3 uint8) of photos (default: scikit-learn's two samples).

    A benchmark needs a knowable answer, so two kinds of crop are refused: one whose corner is
    within `min_gap` px (default size // 4) on both axes of another crop of the same photo (it
    would be a shifted copy of it, as near to a near-copy as its source), and a flat one (grey
    standard deviation < `min_std`: sky, out-of-focus background) that no method can tell from
    its neighbours. With `dihedral`, the photos' 8 flips / quarter turns count as different
    photos (8x the room; a flipped crop is a different image for every method here). Crops
    cycle through the (transformed) photos; deterministic from the seed.
    """
    if photos is None:
        from sklearn.datasets import load_sample_images

        photos = load_sample_images().images
    photos = [np.asarray(p) for p in photos]
    if dihedral:
        photos = [np.ascontiguousarray(np.rot90(q, k)) for p in photos for q in (p, p[:, ::-1]) for k in range(4)]
    gap = size // 4 if min_gap is None else int(min_gap)
    rng = np.random.default_rng(seed)
    occupied = [np.zeros((p.shape[0] - size + 1, p.shape[1] - size + 1), dtype=bool) for p in photos]
    out: list[np.ndarray] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 10_000:
            raise ValueError(
                f"photo_crops: could only place {len(out)} of {n} crops of {size} px "
                f"(min_gap={gap}, min_std={min_std}); ask for fewer or smaller gaps"
            )
        k = len(out) % len(photos)
        occ = occupied[k]
        y, x = int(rng.integers(occ.shape[0])), int(rng.integers(occ.shape[1]))
        if occ[y, x]:
            if not occ.all():
                continue
            raise ValueError(f"photo_crops: photo {k} is full after {len(out)} crops; ask for fewer or smaller gaps")
        crop = np.ascontiguousarray(photos[k][y : y + size, x : x + size])
        grey = crop.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        if grey.std() < min_std:
            occ[y, x] = True  # flat: never try this corner again
            continue
        occ[max(0, y - gap + 1) : y + gap, max(0, x - gap + 1) : x + gap] = True
        out.append(crop)
    return out
