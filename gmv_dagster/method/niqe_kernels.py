"""NIQE's passes over every pixel as compiled CPU loops (numba), for method/niqe.py on the CPU.

Torch runs them as about 40 whole-array ops per chunk of images, each a pass through memory several MB large;
here each pixel is read once per pass and its neighbours come from cache: the normalised image (local mean and
deviation, 7-tap separable window) in one loop, the five fields of every block (the block and its products with four
circular shifts) and their sums in another, the AGGD fits of every field and the features' assembly in a third (from
those sums: the tensor path's glue of small ops, which held the GIL between them), and the half-size resize of the
second scale in a fourth. The first two sum in float64 like the torch path, in another order (`reassoc`,
`contract`: FMAs, vectorised reductions): results agree with it and with pyiqa to ~1e-11 relative (tests), far
inside the 0.001 grid step that a fit snaps to; no `nnan` or `ninf`, since a block's NaNs are decided later, from
these sums. The resize keeps pyiqa's float32 order exactly (bit for bit, tested); the working image itself is PIL's
bicubic enlargement (common/resample.py). Compiled on first use and cached beside this file (numba's cache): about 4x
less time per image than the tensor ops (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import numba
import numpy as np

_FAST = {"reassoc", "contract"}
_EPS = float(np.finfo(np.float64).eps)


@numba.njit(nogil=True, cache=True, fastmath=_FAST, error_model="numpy")
def normalised(img: np.ndarray, g: np.ndarray, z: np.ndarray) -> None:
    """z = (x - mu) / (sqrt(|G * x^2 - mu^2| + eps) + 1), mu = G * x, of every image of img (B, H, W) (uint8, float32 or
    float64: each value read as float64, exactly; see niqe.KERNEL_DTYPES), G the separable 7-tap window g with
    replicate padding: pyiqa's normalize_img_with_gauss, into z (B, H, W) float64. numpy's error model: no
    zero-division check per pixel, which would keep the loop from being vectorised."""
    n, h, w = img.shape
    g0, g1, g2, g3, g4, g5, g6 = g[0], g[1], g[2], g[3], g[4], g[5], g[6]
    v = np.empty((2, w + 6))  # one row after the vertical pass, with three replicated columns on each side
    for b in range(n):
        x = img[b]
        for r in range(h):
            r0, r1, r2 = max(r - 3, 0), max(r - 2, 0), max(r - 1, 0)
            r4, r5, r6 = min(r + 1, h - 1), min(r + 2, h - 1), min(r + 3, h - 1)
            for c in range(w):
                a0, a1, a2, a3, a4, a5, a6 = x[r0, c], x[r1, c], x[r2, c], x[r, c], x[r4, c], x[r5, c], x[r6, c]
                v[0, c + 3] = g0 * a0 + g1 * a1 + g2 * a2 + g3 * a3 + g4 * a4 + g5 * a5 + g6 * a6
                v[1, c + 3] = (
                    g0 * a0 * a0
                    + g1 * a1 * a1
                    + g2 * a2 * a2
                    + g3 * a3 * a3
                    + g4 * a4 * a4
                    + g5 * a5 * a5
                    + g6 * a6 * a6
                )
            for p in range(2):
                for k in range(3):
                    v[p, k] = v[p, 3]
                    v[p, w + 3 + k] = v[p, w + 2]
            vm, ve, xr, zr = v[0], v[1], x[r], z[b, r]
            for c in range(w):
                m = (
                    g0 * vm[c]
                    + g1 * vm[c + 1]
                    + g2 * vm[c + 2]
                    + g3 * vm[c + 3]
                    + g4 * vm[c + 4]
                    + g5 * vm[c + 5]
                    + g6 * vm[c + 6]
                )
                e2 = (
                    g0 * ve[c]
                    + g1 * ve[c + 1]
                    + g2 * ve[c + 2]
                    + g3 * ve[c + 3]
                    + g4 * ve[c + 4]
                    + g5 * ve[c + 5]
                    + g6 * ve[c + 6]
                )
                zr[c] = (xr[c] - m) / (np.sqrt(abs(e2 - m * m) + _EPS) + 1.0)


@numba.njit(nogil=True, cache=True, fastmath=_FAST, inline="always")
def _add_sums(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    # The values a * b of one row of one field: their negative and positive sums, sums of squares and counts, added to
    # out (6,). A row's loop without branches, so it runs as vector instructions (1.4x faster than one loop over all
    # five fields with the field chosen inside it).
    neg_sum, pos_sum, neg_sq, pos_sq, n_neg, n_pos = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    for j in range(a.size):
        val = a[j] * b[j]
        neg, pos = min(val, 0.0), max(val, 0.0)
        neg_sum += neg
        pos_sum += pos
        neg_sq += neg * neg
        pos_sq += pos * pos
        n_neg += 1.0 if val < 0 else 0.0
        n_pos += 1.0 if val > 0 else 0.0
    out[0] += neg_sum
    out[1] += pos_sum
    out[2] += neg_sq
    out[3] += pos_sq
    out[4] += n_neg
    out[5] += n_pos


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
def field_sums(z: np.ndarray, bs: int, out: np.ndarray) -> None:
    """For every bs x bs block of every image of z (B, H, W) (blocks column-major, as niqe's features) and each of
    its five fields (the block, and its products with torch.roll's shifts (0, 1), (1, 0), (1, 1), (1, -1)): the sum
    of the negative values, of the positive, of their squares, and the counts of negative and positive values, into
    out (B, blocks, 5, 6)."""
    n, h, w = z.shape
    nbh, nbw = h // bs, w // bs
    p = np.empty((bs + 1, bs + 2))  # the block with one circular row above and circular columns on both sides
    ones = np.ones(bs)
    for b in range(n):
        for bj in range(nbw):
            for bi in range(nbh):
                r0, c0, o = bi * bs, bj * bs, out[b, bj * nbh + bi]
                for i in range(bs):
                    for j in range(bs):
                        p[i + 1, j + 1] = z[b, r0 + i, c0 + j]
                for j in range(bs):
                    p[0, j + 1] = z[b, r0 + bs - 1, c0 + j]
                for i in range(bs + 1):
                    p[i, 0] = p[i, bs]
                    p[i, bs + 1] = p[i, 1]
                o[:] = 0.0
                for i in range(bs):
                    row, above = p[i + 1], p[i]
                    x = row[1 : bs + 1]
                    _add_sums(x, ones, o[0])
                    _add_sums(x, row[0:bs], o[1])
                    _add_sums(x, above[1 : bs + 1], o[2])
                    _add_sums(x, above[0:bs], o[3])
                    _add_sums(x, above[2 : bs + 2], o[4])


@numba.njit(nogil=True, cache=True)
def half_size(img: np.ndarray, taps: np.ndarray, out: np.ndarray) -> None:
    """pyiqa's imresize(img / 255, scale=0.5, antialiasing=True) * 255 of every image of img (B, H, W) (H, W even;
    uint8, float32 or float64, read as float64), into out (B, H / 2, W / 2) float64: niqe._half's float32 arithmetic
    in its order (each product rounded, summed over the 10 taps in turn; rows, then columns, MATLAB's symmetric
    padding), so bit for bit equal (test).
    No fastmath: a fused multiply-add would round differently."""
    n, h, w = img.shape
    h2, w2 = h // 2, w // 2
    x = np.empty((h, w), dtype=np.float32)
    rows = np.empty((w, h2), dtype=np.float32)  # the row pass's result, transposed: columns become rows
    acc = np.empty(max(w, h2), dtype=np.float32)
    for b in range(n):
        for r in range(h):
            for c in range(w):
                x[r, c] = np.float32(img[b, r, c] / 255.0)
        for i in range(h2):
            for j in range(w):
                acc[j] = np.float32(0.0)
            for k in range(10):
                p = 2 * i + k  # padded row p: 3 2 1 0 | 0 .. h-1 | h-1 .. h-4 (MATLAB's symmetric padding)
                src = 3 - p if p < 4 else (p - 4 if p < h + 4 else 2 * h + 3 - p)
                tk = taps[k]
                for j in range(w):
                    acc[j] += x[src, j] * tk
            for j in range(w):
                rows[j, i] = acc[j]
        for j in range(w2):  # output column j: the row pass's padded columns 2j .. 2j+9, each a row of `rows`
            for i in range(h2):
                acc[i] = np.float32(0.0)
            for k in range(10):
                p = 2 * j + k
                src = 3 - p if p < 4 else (p - 4 if p < w + 4 else 2 * w + 3 - p)
                tk = taps[k]
                for i in range(h2):
                    acc[i] += rows[src, i] * tk
            for i in range(h2):
                out[b, i, j] = np.float64(acc[i]) * 255.0


@numba.njit(nogil=True, cache=True, error_model="numpy")
def block_features(
    sums: np.ndarray, n: int, r_gam: np.ndarray, gam: np.ndarray, beta: np.ndarray, mean: np.ndarray, out: np.ndarray
) -> None:
    """niqe._aggd and _scale_features' assembly, from `field_sums`' output (B, blocks, 5, 6): the 18 features of every
    block into out (B, blocks, 18): alpha and (beta_l + beta_r) / 2 of the block's own field, then alpha, mean, beta_l,
    beta_r of each shifted product. The tensor path's float64 operations in its order (no fastmath), so the same bits
    but for square roots, which torch computes to within half an ulp (Sleef) and this loop exactly: a feature differs
    in its last bit now and then (scores ~1e-12 relative; tests hold both paths to pyiqa). The grid search picks the
    nearer neighbour in the increasing table r_gam (the lower on ties), grid point 0 for a non-finite ratio, as torch's
    argmin does in pyiqa. numpy's error model: a block with no negative (or positive) values divides by zero into NaN
    or inf, as torch does, instead of raising."""
    last = r_gam.size - 1
    for b in range(sums.shape[0]):
        for k in range(sums.shape[1]):
            o = out[b, k]
            for f in range(5):
                neg_sum, pos_sum, ss_l, ss_r, n_l, n_r = sums[b, k, f]
                left_std, right_std = np.sqrt(ss_l / n_l), np.sqrt(ss_r / n_r)
                g = left_std / right_std
                d = (pos_sum - neg_sum) / n
                rhat = d * d / ((ss_l + ss_r) / n)
                g2 = g * g + 1
                x = (rhat * (g * g * g + 1) * (g + 1)) / (g2 * g2)
                pick = 0
                if np.isfinite(x):
                    hi = min(max(np.searchsorted(r_gam, x), 1), last)
                    pick = hi - 1 if abs(r_gam[hi - 1] - x) <= abs(r_gam[hi] - x) else hi
                beta_l, beta_r = left_std * beta[pick], right_std * beta[pick]
                if f == 0:
                    o[0], o[1] = gam[pick], (beta_l + beta_r) / 2
                else:
                    j = 4 * f - 2
                    o[j], o[j + 1], o[j + 2], o[j + 3] = gam[pick], (beta_r - beta_l) * mean[pick], beta_l, beta_r


def warm_up() -> None:
    """Load every kernel now, with the argument types NIQE calls them with: numba loads a function from its cache (or
    compiles it, on a machine's first run: a few seconds) at its first call, about 1 s in a fresh process, which would
    otherwise land on the first batch a scorer scores. Cheap once loaded."""
    z = np.zeros((1, 4, 4))
    for dtype in (np.uint8, np.float32, np.float64):  # niqe.KERNEL_DTYPES: the planes' own dtype, no float64 copy
        img = np.zeros((1, 4, 4), dtype)
        normalised(img, np.ones(7), z)
        half_size(img, np.ones(10, dtype=np.float32), np.empty((1, 2, 2)))
    sums = np.ones((1, 4, 5, 6))
    field_sums(z, 2, sums)
    block_features(sums, 4, np.arange(3.0), np.ones(3), np.ones(3), np.ones(3), np.empty((1, 4, 18)))
