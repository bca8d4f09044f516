"""NIQE (Mittal et al. 2012) scoring and pristine-model refit: pyiqa 0.1.16's NIQE, >= 20x faster on a CPU.

pyiqa spends its time in a 2-D float64 convolution and per-block AGGD grid searches. Here the 7x7 Gaussian
runs as two 1-D passes, every block of a chunk of images is fitted by a few tensor ops (the grid search is a
searchsorted), and scratch buffers are reused (a fresh multi-MB tensor costs more in page faults than the
op). On the CPU the per-pixel passes (the normalised image; the five fields of every block and their sums; the
half-size resize) and the fits of every block are compiled loops (niqe_kernels.py); on other devices, tensor ops
(`kernels="torch"` forces them anywhere).
Equal to pyiqa (tests: features and scores within 1e-4 relative, measured ~1e-8) because of:
- float64 where pyiqa uses it: E[x^2] - mu^2 cancels, and the fit snaps to a 0.001-step gamma grid, so an
  error of 1e-7 (float32) would move some features a whole grid step. Only signs are counted in float32;
- the 1-D window scaled so that its 2-D sum equals that of pyiqa's float32-rounded window (1 + 1.1e-8):
  in flat non-black regions the normalised value is then pyiqa's tiny negative number, not 0, which
  decides the sign counts of the fits (with an exactly normalised window Fashion-MNIST-like images
  differ by 200%);
- the half-size resize, luminance and grid tables computed with pyiqa's dtypes and summation orders: bit
  for bit equal (tested).
Scratch memory: about 5 MB per image of a chunk (8 images of 192 px: ~40 MB), on the input's device.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

BLOCK = 96  # NIQE's block at the first scale (half of it at the second); pyiqa's size
FEATURES = 36  # per plane: 18 at each of two scales
MAT_HEADER = b"MATLAB 5.0 MAT-file, written by gmv-dagster".ljust(116)  # fixed: equal parameters, equal files
_F64 = torch.float64
KERNEL_DTYPES = (torch.uint8, torch.float32, torch.float64)  # plane dtypes the compiled loops read (and warm up)


def y_channel(rgb01: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) luminance rounded to integers 0..255, in the input's dtype.

    pyiqa's ``to_y_channel(x, 255, "yiq")`` computes (x.permute(0, 2, 3, 1) @ yiq.T)[..., 0] * 255, rounded;
    the BLAS sums the three products left to right without FMA (tested bit for bit, including the colours
    whose exact value ends in .5), so three multiplies and two adds give the same bits at a tenth of the
    cost of that permute-and-matmul. A (B, 1, H, W) input is grey: x * 255 rounded, as pyiqa's NIQE does.
    """
    if rgb01.shape[1] == 1:
        return (rgb01 * 255).round()
    w = torch.tensor([0.299, 0.587, 0.114]).to(rgb01).tolist()  # float32 weights, as pyiqa's matrix
    y, tmp = rgb01[:, 0:1] * w[0], rgb01[:, 1:2] * w[1]  # in place from here: two allocations, not five
    return y.add_(tmp).add_(torch.mul(rgb01[:, 2:3], w[2], out=tmp)).mul_(255).round_()


def colour_planes(rgb01: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) planes Y (as `y_channel`), Cb, Cr on 0..255, rounded.

    NIQE reads luminance only, so it misses colour noise and, on colour photos, much of blur (measured in
    docs/PERFORMANCE.md); its features on the two chroma planes (ITU-R BT.601 full range, as JPEG) add that
    to the colour variant. A grey image's chroma is constant: its chroma features are NaN (no contrast).
    """
    y = y_channel(rgb01)
    r, g, b = (rgb01[:, i : i + 1].to(_F64) * 255 for i in range(3))
    cb = (128 - 0.168736 * r - 0.331264 * g + 0.5 * b).round_()
    cr = (128 + 0.5 * r - 0.418688 * g - 0.081312 * b).round_()
    return torch.cat([y, cb.to(y.dtype), cr.to(y.dtype)], 1)


@dataclass(frozen=True)
class NiqeTables:
    """Constants of the computation on one device; built once and passed around (no module-level cache)."""

    gauss: Tensor  # (7,) float64 1-D window, outer product sums to pyiqa's 2-D window sum
    resize: Tensor  # (10,) float32 bicubic antialiased taps of pyiqa's imresize(scale=0.5)
    r_gam: Tensor  # (9801,) float64 AGGD ratio table, strictly increasing
    gam: Tensor  # (9801,) the gamma grid as pyiqa builds it (float32 arange, then float64)
    beta: Tensor  # sqrt(exp(lgamma(1/g) - lgamma(3/g))) per grid point
    mean: Tensor  # exp(lgamma(2/g) - lgamma(1/g)) per grid point

    @classmethod
    def build(cls, device: torch.device | str = "cpu") -> NiqeTables:
        ax = np.arange(-3.0, 4.0)
        sigma = 7.0 / 6.0
        h2 = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma * sigma))
        pyiqa_sum = math.fsum(torch.from_numpy(h2 / h2.sum()).float().double().numpy().ravel())
        g = np.exp(-(ax**2) / (2 * sigma * sigma))
        g = g / g.sum() * math.sqrt(pyiqa_sum)
        # pyiqa's resize weights: a (taps, positions) buffer normalised over dim 0, in float32; every position
        # of a 2x reduction has the same taps (distance 4.5 - k, scaled by 0.5).
        pos = (torch.full((1, 4), 4.5) - torch.arange(10.0)[:, None]) * 0.5
        ax_, a = pos.abs(), -0.5
        w = ((a + 2) * ax_**3 - (a + 3) * ax_**2 + 1) * ax_.le(1) + (
            a * ax_**3 - 5 * a * ax_**2 + 8 * a * ax_ - 4 * a
        ) * (ax_.gt(1) & ax_.le(2))
        w = w / w.sum(dim=0, keepdim=True)
        gam = torch.arange(0.2, 10 + 0.001, 0.001, dtype=torch.float32).to(_F64)
        r_gam = (2 * torch.lgamma(2.0 / gam) - (torch.lgamma(1.0 / gam) + torch.lgamma(3.0 / gam))).exp()
        if not bool((r_gam.diff() > 0).all()):  # the nearest-point search below relies on it
            raise AssertionError("AGGD ratio table is not increasing")
        beta = (torch.lgamma(1 / gam) - torch.lgamma(3 / gam)).exp().sqrt()
        mean = (torch.lgamma(2 / gam) - torch.lgamma(1 / gam)).exp()
        return cls(*(t.to(device) for t in (torch.from_numpy(g), w[:, 0].contiguous(), r_gam, gam, beta, mean)))


class Workspace:
    """Scratch buffers and indices, reused across chunks and calls: a fresh multi-MB tensor per op costs
    more in page faults than the op itself (a 3 MB clamp: 85 us into a buffer, 495 us into a new one), and
    how often the allocator returns memory to the OS varies from run to run. One per thread."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.cache = device, {}

    def __call__(self, name: str, *shape: int, dtype: torch.dtype = _F64) -> Tensor:
        """A (shape) view of buffer `name`, grown as needed: memory stays that of the largest chunk."""
        n, buf = math.prod(shape), self.cache.get((name, dtype))
        if buf is None or len(buf) < n:
            buf = self.cache[(name, dtype)] = torch.empty(n, dtype=dtype, device=self.device)
        return buf[:n].view(shape)

    def index(self, key: tuple, make) -> Tensor:
        return self.cache[key] if key in self.cache else self.cache.setdefault(key, make().to(self.device))


def _local_stats(img: Tensor, t: NiqeTables, buf: Workspace) -> tuple[Tensor, Tensor]:
    """(mu, sigma + 1) of pyiqa's normalize_img_with_gauss(img, padding="replicate"), whose output is
    (img - mu) / (sigma + 1), with the window applied separably. Replicate padding commutes with the
    vertical pass: rows are padded before it, columns after it."""
    b, _, h, w = img.shape
    g = t.gauss.tolist()
    xr = buf("xr", b, 2, h + 6, w)
    xr[:, :1, 3 : h + 3] = img
    torch.mul(img, img, out=xr[:, 1:, 3 : h + 3])
    xr[:, :, :3] = xr[:, :, 3:4]
    xr[:, :, h + 3 :] = xr[:, :, h + 2 : h + 3]
    v = buf("v", b, 2, h, w + 6)
    vi = v[..., 3 : w + 3]
    torch.mul(xr[:, :, 0:h], g[0], out=vi)
    for k in range(1, 7):
        vi.add_(xr[:, :, k : k + h], alpha=g[k])
    v[..., :3] = v[..., 3:4]
    v[..., w + 3 :] = v[..., w + 2 : w + 3]
    s = buf("s", b, 2, h, w)
    torch.mul(v[..., 0:w], g[0], out=s)
    for k in range(1, 7):
        s.add_(v[..., k : k + w], alpha=g[k])
    mu, e2 = s[:, 0], s[:, 1]
    den = torch.mul(mu, mu, out=buf("den", b, h, w))
    torch.sub(e2, den, out=den).abs_().add_(torch.finfo(_F64).eps).sqrt_().add_(1)  # sigma + 1
    return mu, den


def compiled_loops(device: torch.device, kernels: str) -> bool:
    """Whether NIQE's per-pixel passes run as compiled loops (niqe_kernels): on the CPU with kernels "auto"; with
    tensor ops on any other device, or anywhere with kernels "torch"."""
    if kernels not in ("auto", "torch"):
        raise ValueError(f"kernels must be 'auto' or 'torch', got {kernels!r}")
    return torch.device(device).type == "cpu" and kernels == "auto"


def _half(img: Tensor, t: NiqeTables, buf: Workspace, compiled: bool) -> Tensor:
    """pyiqa's imresize(img / 255, scale=0.5, antialiasing=True) * 255 of img (b, 1, h, w), h and w even, bit for bit:
    as a compiled loop (niqe_kernels.half_size, 3x faster) where `compiled` (see `compiled_loops`), else by tensor
    ops (`_half_torch`); both in pyiqa's float32 order (test)."""
    if not compiled:
        return _half_torch(img, t, buf)
    from . import niqe_kernels

    b, _, h, w = img.shape
    out = buf("img2", b, 1, h // 2, w // 2)
    niqe_kernels.half_size(img[:, 0].numpy(), t.resize.numpy(), out[:, 0].numpy())
    return out


def _half_torch(img: Tensor, t: NiqeTables, buf: Workspace) -> Tensor:
    """pyiqa's imresize(img / 255, scale=0.5, antialiasing=True) * 255 for even sizes, bit for bit: float32
    inside as pyiqa, products laid out (taps, rows, cols) and summed over taps as pyiqa sums them. Columns
    are resized as rows of the transpose (same sums, contiguous reads)."""
    b, _, h, w = img.shape
    x = torch.div(img[:, 0], 255.0, out=buf("x32", b, h, w, dtype=torch.float32))  # in float64, stored float32
    for step, (n, m) in enumerate([(h, w), (w, h // 2)]):
        pad = buf.index(
            ("sym", n),
            lambda n=n: torch.cat([torch.arange(3, -1, -1), torch.arange(n), torch.arange(n - 1, n - 5, -1)]),
        )  # MATLAB symmetric
        padded = torch.index_select(x, 1, pad, out=buf(f"pad{step}", b, n + 8, m, dtype=torch.float32))
        taps = padded.unfold(1, 10, 2).permute(0, 3, 1, 2)  # [b, k, i, j] = padded[2i + k, j]
        prod = torch.mul(taps, t.resize.view(10, 1, 1), out=buf("taps", *taps.shape, dtype=torch.float32))
        x = buf(f"half{step}", b, m, n // 2, dtype=torch.float32).copy_(prod.sum(1).transpose(1, 2))
    return buf("img2", b, 1, h // 2, w // 2).copy_(x.unsqueeze(1)).mul_(255.0)


def _aggd(sums: Tensor, n_l: Tensor, n_r: Tensor, n: int, t: NiqeTables) -> tuple[Tensor, Tensor, Tensor]:
    """pyiqa's estimate_aggd_param for all fields at once, from their sums (4, ...) = (sum of the negative
    values, of the positive, of their squares) and counts of negative and positive values (each (...)):
    (grid index of alpha, beta_l, beta_r)."""
    neg_sum, pos_sum, ss_l, ss_r = sums
    left_std, right_std = torch.sqrt(ss_l / n_l), torch.sqrt(ss_r / n_r)
    gammahat = left_std / right_std
    rhat = ((pos_sum - neg_sum) / n).pow(2) / ((ss_l + ss_r) / n)
    rhatnorm = ((rhat * (gammahat.pow(3) + 1) * (gammahat + 1)) / (gammahat.pow(2) + 1).pow(2)).contiguous()
    # argmin |r_gam - x| over the increasing table = the nearer of the two neighbours (lower index on ties);
    # a NaN or inf x gives index 0, as torch's argmin over an all-NaN or all-inf row does in pyiqa.
    hi = torch.searchsorted(t.r_gam, rhatnorm).clamp(1, len(t.r_gam) - 1)
    lo = hi - 1
    pick = torch.where((t.r_gam[lo] - rhatnorm).abs() <= (t.r_gam[hi] - rhatnorm).abs(), lo, hi)
    pick = torch.where(torch.isfinite(rhatnorm), pick, 0)
    return pick, left_std * t.beta[pick], right_std * t.beta[pick]


def _field_sums_torch(img: Tensor, bs: int, t: NiqeTables, buf: Workspace) -> tuple[Tensor, Tensor, Tensor]:
    """For every bs x bs block of img (b, 1, h, w) and each of its five fields (the normalised block, and its
    products with torch.roll's shifts (0,1), (1,0), (1,1), (1,-1)): (sums (4, 5, b, blocks) of the negative values,
    of the positive, of their squares; counts of negative values, of positive (each (5, b, blocks))), by tensor ops
    on any device."""
    b, _, h, w = img.shape
    nbh, nbw = h // bs, w // bs
    mu, den = _local_stats(img, t, buf)

    def blocks(x):
        return x.reshape(b, nbh, bs, nbw, bs).permute(0, 3, 1, 2, 4)  # column-major

    # Each normalised block with one circular row above and circular columns on both sides: its slices
    # are torch.roll's shifts.
    zp = buf("zp", b, nbw, nbh, bs + 1, bs + 2)
    z = torch.sub(blocks(img), blocks(mu), out=zp[..., 1:, 1 : bs + 1]).div_(blocks(den))
    zp[..., 0, 1 : bs + 1] = z[..., bs - 1, :]
    zp[..., 0], zp[..., bs + 1] = zp[..., bs], zp[..., 1]
    sign = buf("sign", *zp.shape, dtype=torch.float32).copy_(zp).sign_()
    split = buf("split", 2, b, nbw, nbh, bs, bs)  # (negative part, positive part) of one field
    neg, part = split
    sgn = buf("sgn", 5, b, nbw, nbh, bs, bs, dtype=torch.float32)
    sums = []
    # One field at a time, while it is in cache: sums and sums of squares of its negative and positive parts.
    # Counts of each sign come from products of float32 signs (exact).
    for k, (r, c) in enumerate([(1, 1), (1, 0), (0, 1), (0, 0), (0, 2)]):
        if k == 0:
            field = zp[..., 1:, 1 : bs + 1]
            sgn[0] = sign[..., 1:, 1 : bs + 1]
        else:
            field = torch.mul(zp[..., 1:, 1 : bs + 1], zp[..., r : r + bs, c : c + bs], out=part)
            torch.mul(sign[..., 1:, 1 : bs + 1], sign[..., r : r + bs, c : c + bs], out=sgn[k])
        torch.clamp(field, max=0, out=neg)
        torch.clamp(field, min=0, out=part)
        sums.append(torch.cat([split.sum((-2, -1)), torch.linalg.vector_norm(split, 2, (-2, -1)).pow(2)]))
    sums = torch.stack(sums, 1).view(4, 5, b, nbw * nbh)  # (neg, pos, neg^2, pos^2) x field x image x block
    balance = sgn.sum((-2, -1)).view(5, b, nbw * nbh).to(_F64)  # n_pos - n_neg
    nonzero = sgn.abs_().sum((-2, -1)).view(5, b, nbw * nbh).to(_F64)  # n_pos + n_neg
    return sums, (nonzero - balance) / 2, (nonzero + balance) / 2


def _features_cpu(img: Tensor, bs: int, t: NiqeTables, buf: Workspace) -> Tensor:
    """`_scale_features` as compiled loops end to end (method/niqe_kernels.py): the normalised image, the block sums,
    and the AGGD fits with the features' assembly, the last in the tensor path's own operations (the same bits but
    for square roots: scores ~1e-12 apart, see niqe_kernels.block_features)."""
    from . import niqe_kernels

    b, _, h, w = img.shape
    z = buf("z", b, h, w).numpy()
    niqe_kernels.normalised(img[:, 0].numpy(), t.gauss.numpy(), z)  # img: contiguous (niqe_features), viewed
    sums = buf("sums", b, (h // bs) * (w // bs), 5, 6).numpy()
    niqe_kernels.field_sums(z, bs, sums)
    out = np.empty((b, (h // bs) * (w // bs), 18))  # its own: the caller keeps both scales' features
    niqe_kernels.block_features(sums, bs * bs, t.r_gam.numpy(), t.gam.numpy(), t.beta.numpy(), t.mean.numpy(), out)
    return torch.from_numpy(out)


def _scale_features(img: Tensor, bs: int, t: NiqeTables, buf: Workspace, compiled: bool) -> Tensor:
    """The 18 features of every bs x bs block of img (b, 1, h, w): (b, n_blocks, 18), pyiqa's order; as compiled
    loops where `compiled` (see `compiled_loops`), else as tensor ops."""
    if compiled:
        return _features_cpu(img, bs, t, buf)
    b, _, h, w = img.shape
    sums, n_neg, n_pos = _field_sums_torch(img, bs, t, buf)
    pick, beta_l, beta_r = (x.permute(1, 2, 0) for x in _aggd(sums, n_neg, n_pos, bs * bs, t))
    alpha = t.gam[pick]
    mean = (beta_r - beta_l) * t.mean[pick]
    n_blocks = (h // bs) * (w // bs)
    per_shift = torch.stack([alpha, mean, beta_l, beta_r], -1)[:, :, 1:].reshape(b, n_blocks, 16)
    return torch.cat([alpha[:, :, :1], ((beta_l + beta_r) / 2)[:, :, :1], per_shift], -1)


def chunk_for(block: int) -> int:
    """Images per chunk at a block size: 8 at 96 px (measured best on 2 cores), more for smaller blocks (same
    scratch memory, fewer and larger ops)."""
    return max(8, round(8 * (BLOCK / block) ** 2))


def niqe_features(
    y: Tensor,
    block: int = BLOCK,
    *,
    chunk: int | None = None,
    tables: NiqeTables | None = None,
    workspace: Workspace | None = None,
    kernels: str = "auto",
) -> Tensor:
    """(B, 1, H, W) luminance on 0..255 (see `y_channel`) -> (B, n_blocks, 36) float64 NIQE block features.

    As pyiqa's NIQE: crop to a multiple of `block`, 18 features per block at full and at half size.
    Constant blocks give NaN features (as pyiqa). Images go `chunk` at a time through the buffers of
    `workspace` (~5 MB per 192-px image of a chunk; pass one to reuse it across calls); by default
    `chunk_for(block)`. `y` may be uint8 (a grey image's pixels) or float32 (as `y_channel` gives it): it is computed
    on in float64, which holds their values exactly (the compiled loops read uint8, float32 and float64 planes as they
    are, saving a float64 copy of every chunk). `kernels`: "auto" computes the per-pixel passes with compiled loops on
    the CPU (niqe_kernels) and tensor ops on other devices; "torch" uses tensor ops on every device (the two agree to
    ~1e-11 relative: test).
    """
    compiled = compiled_loops(y.device, kernels)
    t = tables if tables is not None else NiqeTables.build(y.device)
    h, w = y.shape[-2:]
    if block % 2:  # the half-size resize is exact for even sizes only (pyiqa pads odd sizes differently)
        raise ValueError(f"NIQE block size must be even, got {block}")
    if h < block or w < block:
        raise ValueError(f"NIQE needs images of at least {block} x {block} pixels, got {h} x {w}")
    y = y[..., : h // block * block, : w // block * block]
    buf = workspace if workspace is not None else Workspace(y.device)
    out = [torch.empty(0, (h // block) * (w // block), 36, dtype=_F64, device=y.device)]
    for part in y.split(chunk or chunk_for(block)):
        if compiled and part.dtype in KERNEL_DTYPES:  # the compiled loops read these as they are, exactly
            part = part.contiguous()  # once, for both scales (a colour model's planes are slices)
        else:
            part = buf("y", *part.shape).copy_(part)
        first = _scale_features(part, block, t, buf, compiled)
        out.append(torch.cat([first, _scale_features(_half(part, t, buf, compiled), block // 2, t, buf, compiled)], -1))
    return torch.cat(out)


def plane_features(planes: Tensor, block: int = BLOCK, **kwargs) -> Tensor:
    """(B, P, H, W) planes on 0..255 -> (B, n_blocks, 36 P): `niqe_features` of each plane, side by side."""
    return torch.cat([niqe_features(planes[:, i : i + 1], block, **kwargs) for i in range(planes.shape[1])], -1)


def niqe_score(features: Tensor, mu: Tensor, cov: Tensor) -> Tensor:
    """NIQE per image, (B,) float64: sqrt(d^T pinv((cov + cov_d) / 2) d), d = mu - nanmean(features).

    As pyiqa: the image's mean ignores NaN per feature; its covariance uses the blocks without NaN (np.cov
    normalisation, none with a single block). Unlike pyiqa, whose batched pinv raises for the whole batch, an
    image whose matrix is not finite (no block without NaN: e.g. a constant image) scores NaN and the others
    are unaffected; an image with at least one NaN-free block scores as pyiqa scores it. With 4 blocks per
    image cov_d has rank <= 3, so the pristine covariance must be well conditioned for a stable score.
    """
    f = features.to(_F64)
    nan = torch.isnan(f)
    mean = torch.where(nan, 0.0, f).sum(1) / (~nan).float().sum(1)
    rows = ~nan.any(2, keepdim=True)
    n = rows.sum(1, keepdim=True).to(_F64)  # (B, 1, 1)
    x = torch.where(rows, f, 0.0)
    xc = torch.where(rows, x - x.sum(1, keepdim=True) / n, 0.0)
    cov_d = xc.transpose(1, 2) @ xc / (n - (n > 1).to(_F64))
    m = (cov.to(f).expand_as(cov_d) + cov_d) / 2
    ok = torch.isfinite(m).all(2).all(1)
    m = torch.where(ok[:, None, None], m, torch.eye(m.shape[-1], dtype=_F64, device=m.device))
    # pinv (an SVD, 0.2 ms per image) equals the inverse, to ~cond * 1e-16, where m is well conditioned:
    # there the Cholesky inverse (10x cheaper) is used: cond_2 <= |m|_F |m^-1|_F <= 1e10 (error <= ~1e-6).
    chol, info = torch.linalg.cholesky_ex(m)
    failed = info != 0  # not positive definite: its factor may hold a zero pivot, which cholesky_inverse refuses
    eye = torch.eye(m.shape[-1], dtype=_F64, device=m.device)
    inv = torch.cholesky_inverse(torch.where(failed[:, None, None], eye, chol))
    cond = torch.linalg.matrix_norm(m) * torch.linalg.matrix_norm(inv)
    bad = failed | ~(cond <= 1e10)
    if bad.any():
        inv[bad] = torch.linalg.pinv(m[bad])
    d = (mu.to(f).reshape(1, -1) - mean).unsqueeze(1)
    q = torch.bmm(torch.bmm(d, inv), d.transpose(1, 2)).reshape(-1).sqrt()
    return torch.where(ok, q, torch.nan)


def fit_pristine(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pristine model from (N, 36 P) block features: rows with a non-finite value dropped, mean and np.cov."""
    f = np.asarray(features, dtype=np.float64)
    f = f[np.isfinite(f).all(1)]
    if len(f) < 2 * f.shape[1]:
        raise ValueError(
            f"NIQE refit needs more reference images: a model of {f.shape[1]} features needs at least "
            f"{2 * f.shape[1]} image blocks to fit, the images gave {len(f)} usable ones"
        )
    return f.mean(0), np.cov(f.T)


def save_pristine(path: str | os.PathLike, mu: np.ndarray, cov: np.ndarray, block: int = BLOCK) -> Path:
    """Write the model as pyiqa reads it (mu_prisparam (1, 36), cov_prisparam), with the block size it was fitted
    at (`block`, which pyiqa ignores), and a fixed MAT header, so equal parameters give equal bytes; written to a
    temporary file and renamed (no torn files)."""
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(
        buffer,
        {
            "mu_prisparam": np.asarray(mu, np.float64).reshape(1, -1),
            "cov_prisparam": np.asarray(cov, np.float64),
            "block": np.array([[block]], np.float64),
        },
    )
    path, tmp = Path(path), Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(MAT_HEADER + buffer.getvalue()[116:])
    os.replace(tmp, path)
    return path


def load_pristine(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, int]:
    """(mu (36 P,), cov (36 P, 36 P)) float64 and the block size they were fitted at, from a .mat written by
    save_pristine (or pyiqa's own files: block 96)."""
    import scipy.io

    params = scipy.io.loadmat(str(path))
    block = int(params["block"].item()) if "block" in params else BLOCK
    return np.ravel(params["mu_prisparam"]).astype(np.float64), np.asarray(params["cov_prisparam"], np.float64), block


@dataclass
class NiqeScorer:
    """A pristine model on a device: `score` maps luminance batches (from `y_channel`) to NIQE, `score_rgb`
    RGB batches. Deterministic, and results do not depend on batching at a fixed torch thread count (the last bits
    of the final bmm do depend on it: method/quality scores with one thread per batch); it keeps its scratch buffers
    (`workspace`, ~40 MB at chunk 8) between calls, so use one scorer per thread."""

    mu: Tensor
    cov: Tensor
    device: torch.device
    block: int = BLOCK
    chunk: int | None = None  # images per chunk; None: chunk_for(block)
    kernels: str = "auto"  # niqe_features' choice: compiled loops on the CPU ("auto") or tensor ops ("torch")

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        self.mu = torch.as_tensor(self.mu, dtype=_F64).reshape(-1).to(self.device)
        self.cov = torch.as_tensor(self.cov, dtype=_F64).to(self.device)
        self.chunk = self.chunk or chunk_for(self.block)
        self.tables, self.workspace = NiqeTables.build(self.device), Workspace(self.device)
        if compiled_loops(self.device, self.kernels):
            from . import niqe_kernels

            niqe_kernels.warm_up()  # loaded with the model, not on its first batch

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: torch.device | str = "cpu", **kwargs) -> NiqeScorer:
        """The model of a .mat, scoring at the block size it was fitted at."""
        mu, cov, block = load_pristine(path)
        return cls(torch.from_numpy(mu), torch.from_numpy(cov), torch.device(device), block, **kwargs)

    @property
    def planes(self) -> int:
        """1: NIQE on luminance (36 features, pyiqa's); 3: the colour variant on Y, Cb, Cr (108 features)."""
        return self.mu.numel() // FEATURES

    def features(self, planes: Tensor) -> Tensor:
        if planes.shape[1] != self.planes:
            raise ValueError(f"this pristine model reads {self.planes} plane(s) per image, got {planes.shape[1]}")
        return plane_features(
            planes.to(self.device),
            self.block,
            chunk=self.chunk,
            tables=self.tables,
            workspace=self.workspace,
            kernels=self.kernels,
        )

    def score(self, y_batches: Tensor | Iterable[Tensor]) -> Tensor:
        """NIQE of every image of one (B, P, H, W) batch of planes (`y_channel` or, for a colour model,
        `colour_planes`) or of an iterable of them, (N,) float64."""
        batches = [y_batches] if isinstance(y_batches, Tensor) else y_batches
        out = [niqe_score(self.features(y), self.mu, self.cov) for y in batches]
        return torch.cat(out) if out else torch.empty(0, dtype=_F64, device=self.device)

    def score_rgb(self, rgb01: Tensor) -> Tensor:
        """score of the planes of a (B, 3, H, W) batch in [0, 1], the planes made a chunk at a time."""
        to_planes = colour_planes if self.planes == 3 else y_channel
        return self.score(to_planes(part.to(self.device)) for part in rgb01.split(self.chunk))
