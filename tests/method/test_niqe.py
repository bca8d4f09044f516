"""gmv_dagster.method.niqe against pyiqa 0.1.16's NIQE (the reference), on images the tests make.

Every comparison runs pyiqa on the same tensor and requires non-trivial output (finite, varying scores),
so that no test passes on an empty or constant result.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from gmv_dagster.method import niqe

pyiqa = pytest.importorskip("pyiqa")
from pyiqa.archs.niqe_arch import blockproc, compute_feature, normalize_img_with_gauss
from pyiqa.matlab_utils import imresize
from pyiqa.utils.color_util import to_y_channel

REL = 1e-4


def smooth_image(rng: np.random.Generator, h: int, w: int, colour: bool) -> np.ndarray:
    """Smooth random field + three straight edges + noise: every block has texture (well-conditioned)."""
    yy, xx = np.mgrid[:h, :w]
    channels = []
    for _ in range(3 if colour else 1):
        f = gaussian_filter(rng.normal(size=(h, w)), rng.uniform(2, 8))
        f = (f - f.min()) / (np.ptp(f) + 1e-12) * 160 + 40
        for _ in range(3):
            a, b, c = rng.normal(size=3)
            f = f + 40 * ((a * (yy - h / 2) + b * (xx - w / 2) + c * 20) > 0)
        channels.append(f + rng.normal(0, rng.uniform(1, 6), (h, w)))
    img = np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)
    return img if colour else img[..., 0]


def flat_image(rng: np.random.Generator, size: int = 192) -> np.ndarray:
    """Like the pipeline's Fashion-MNIST input: flat shapes of a few grey levels on black, 28 px upsampled
    bicubic to `size`; large exactly-constant non-zero regions, where the Gaussian window's sum matters."""
    small = np.zeros((28, 28), np.uint8)
    for _ in range(4):
        y0, x0 = rng.integers(0, 20, 2)
        small[y0 : y0 + rng.integers(6, 14), x0 : x0 + rng.integers(6, 14)] = rng.integers(60, 256)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def rgb01(images: list[np.ndarray]) -> torch.Tensor:
    """(B, 3, H, W) float32 in [0, 1], as the pipeline's to_tensor_batch gives pyiqa."""
    arrays = [np.repeat(i[..., None], 3, -1) if i.ndim == 2 else i for i in images]
    return torch.from_numpy(np.stack(arrays).astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


def pyiqa_features(x: torch.Tensor) -> torch.Tensor:
    """pyiqa's NIQE features, step for step as its niqe() computes them before the distance."""
    img = to_y_channel(x, 255, "yiq").double()
    h, w = img.shape[-2:]
    img = img[..., : h // 96 * 96, : w // 96 * 96]
    per_scale = []
    for scale in (1, 2):
        normalised = normalize_img_with_gauss(img, padding="replicate")
        per_scale.append(blockproc(normalised, [96 // scale, 96 // scale], fun=compute_feature))
        if scale == 1:
            img = imresize(img / 255.0, scale=0.5, antialiasing=True) * 255.0
    return torch.cat(per_scale, -1)


def assert_close(mine: torch.Tensor, ref: torch.Tensor, rel: float = REL, atol: float = 0.0) -> None:
    assert mine.shape == ref.shape and mine.numel() > 0
    assert torch.equal(torch.isnan(mine), torch.isnan(ref)), "NaN in different places"
    ok = ~torch.isnan(ref)
    err = (mine[ok] - ref[ok]).abs()
    worst = (err / ref[ok].abs().clamp_min(1e-300)).max().item()
    assert bool((err <= rel * ref[ok].abs() + atol).all()), f"max relative difference {worst:.3g} > {rel}"


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """pyiqa's reference runs take most of this file's time; on a shared 2-core machine one thread is
    faster and steadier than two (OpenMP spin-waits behind other processes). Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict:
    """Parameters refit by our fit_pristine on 24 other images (96 blocks), saved by save_pristine."""
    rng = np.random.default_rng(123)
    refs = [smooth_image(rng, 192, 192, bool(i % 2)) for i in range(20)] + [flat_image(rng) for _ in range(4)]
    feats = niqe.niqe_features(niqe.y_channel(rgb01(refs))).reshape(-1, 36).numpy()
    mu, cov = niqe.fit_pristine(feats)
    path = niqe.save_pristine(tmp_path_factory.mktemp("niqe") / "pristine.mat", mu, cov)
    return {"mu": mu, "cov": cov, "path": path,
            "pyiqa": pyiqa.create_metric("niqe", pretrained_model_path=str(path), device="cpu")}


CASES = {  # name -> images from a generator (seeded by the length of the name)
    "grey 192x192": lambda rng: [smooth_image(rng, 192, 192, False) for _ in range(3)],
    "colour 200x256 (cropped to 192x192)": lambda rng: [smooth_image(rng, 200, 256, True) for _ in range(3)],
    "colour 384x288": lambda rng: [smooth_image(rng, 384, 288, True) for _ in range(2)],
    "flat regions 192x192 (Fashion-MNIST-like)": lambda rng: [flat_image(rng) for _ in range(4)],
}


@pytest.mark.parametrize("case", list(CASES))
def test_features_and_scores_equal_pyiqa_within_1e_4_relative(case: str, pristine: dict) -> None:
    """Block features (same NaNs, 1e-4 relative) and NIQE with our refit parameters read by pyiqa."""
    x = rgb01(CASES[case](np.random.default_rng(len(case))))
    ref_features = pyiqa_features(x)
    features = niqe.niqe_features(niqe.y_channel(x))  # on the CPU: the compiled loops (niqe_kernels)
    assert features.shape == ref_features.shape == (len(x), ref_features.shape[1], 36)
    assert_close(features, ref_features, atol=1e-9)  # atol: "mean" features can be ~0
    # the tensor-op path (what a GPU runs), here on the CPU: equal to pyiqa too, and to the compiled loops
    tensor_ops = niqe.niqe_features(niqe.y_channel(x), kernels="torch")
    assert_close(tensor_ops, ref_features, atol=1e-9)
    assert_close(features, tensor_ops, rel=1e-9, atol=1e-12)

    ref_scores = pristine["pyiqa"](x).reshape(-1).double()
    scorer = niqe.NiqeScorer(torch.from_numpy(pristine["mu"]), torch.from_numpy(pristine["cov"]), "cpu")
    scores = scorer.score(niqe.y_channel(x))
    assert torch.isfinite(ref_scores).all() and ref_scores.std() > 1e-3 * ref_scores.mean()  # not trivial
    assert_close(scores, ref_scores)


def test_y_channel_is_bit_identical_to_pyiqa_for_every_8bit_colour() -> None:
    v = np.arange(256, dtype=np.int32)
    r, g, b = v[:, None, None], v[None, :, None], v[None, None, :]
    rgb = np.stack(np.broadcast_arrays(r, g, b)).reshape(1, 3, 4096, 4096)
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0)
    assert torch.equal(niqe.y_channel(x), to_y_channel(x, 255, "yiq"))
    # float64 (as the refit path feeds pyiqa): the colours whose exact Y ends in .5, and a sample of the rest
    tie = torch.from_numpy(((299 * r + 587 * g + 114 * b) % 1000 == 500).reshape(-1))
    flat = x.reshape(3, -1)
    pick = torch.cat([flat[:, tie], flat[:, ::61]], 1).reshape(1, 3, 1, -1).double()
    assert tie.sum() > 10_000
    assert torch.equal(niqe.y_channel(pick), to_y_channel(pick, 255, "yiq"))


@pytest.mark.parametrize("kernels", ["auto", "torch"])  # on the CPU: the compiled loop, and the tensor ops
@pytest.mark.parametrize("shape", [(192, 192), (96, 288), (384, 96)])
def test_half_size_resize_is_bit_identical_to_pyiqa_imresize(shape: tuple[int, int], kernels: str) -> None:
    y = torch.from_numpy(np.random.default_rng(5).integers(0, 256, (3, 1, *shape))).double()
    ref = imresize(y / 255.0, scale=0.5, antialiasing=True) * 255.0
    mine = niqe._half(y, niqe.NiqeTables.build(), niqe.Workspace(y.device), niqe.compiled_loops(y.device, kernels))
    assert mine.shape == ref.shape == (3, 1, shape[0] // 2, shape[1] // 2) and torch.equal(mine, ref)


def test_compiled_loops_read_planes_in_their_own_dtype_to_the_same_bits() -> None:
    """A grey image's uint8 pixels, y_channel's float32 and float64 planes go to the compiled loops as they are (no
    float64 copy): the same features to the bit; another dtype (int16) is copied to float64 first, and agrees too."""
    rng = np.random.default_rng(8)
    planes = torch.from_numpy(np.stack([smooth_image(rng, 192, 288, False) for _ in range(3)]))[:, None]
    features = niqe.niqe_features(planes)
    assert planes.dtype == torch.uint8 and torch.isfinite(features).all()
    for dtype in (torch.float32, torch.float64, torch.int16):
        assert torch.equal(niqe.niqe_features(planes.to(dtype)), features), dtype
    assert_close(niqe.niqe_features(planes, kernels="torch"), features, rel=1e-9, atol=1e-12)


def test_partly_blank_image_uses_pyiqa_nan_handling(pristine: dict) -> None:
    """Left half constant: those blocks' features are NaN; mean and covariance skip them as pyiqa's do."""
    img = smooth_image(np.random.default_rng(9), 192, 384, True)
    img[:, :192] = 77
    x = rgb01([img])
    features = niqe.niqe_features(niqe.y_channel(x))
    assert torch.isnan(features).any(2).sum().item() == 4  # the 2 + 2 blocks of the blank half
    assert_close(features, pyiqa_features(x), atol=1e-9)
    score = niqe.NiqeScorer.from_file(pristine["path"]).score(niqe.y_channel(x))
    assert torch.isfinite(score).all()
    assert_close(score, pristine["pyiqa"](x).reshape(-1).double())


@pytest.mark.filterwarnings("ignore:cov\\(\\)")  # pyiqa on the blank image: cov of no rows
def test_constant_image_in_a_batch_is_nan_and_leaves_the_others_unchanged(pristine: dict) -> None:
    rng = np.random.default_rng(11)
    images = [smooth_image(rng, 192, 192, True), np.full((192, 192, 3), 128, np.uint8),
              smooth_image(rng, 192, 192, False), np.zeros((192, 192), np.uint8)]
    x = rgb01(images)
    with pytest.raises(RuntimeError):  # the deviation: pyiqa's batched pinv fails on the blank image's NaNs
        pristine["pyiqa"](x)
    scorer = niqe.NiqeScorer.from_file(pristine["path"])
    scores = scorer.score(niqe.y_channel(x))
    assert torch.isnan(scores[[1, 3]]).all() and torch.isfinite(scores[[0, 2]]).all()
    for i in (0, 2):
        alone = scorer.score(niqe.y_channel(x[i : i + 1]))
        assert torch.equal(scores[i : i + 1], alone)  # bit for bit, whatever else is in the batch
        assert_close(alone, pristine["pyiqa"](x[i : i + 1]).reshape(-1).double())


def test_singular_pristine_model_scores_as_pyiqa_pinv(pristine: dict, tmp_path, monkeypatch) -> None:
    """A pristine covariance of rank 10 makes (cov + cov_d) / 2 singular (cov_d has rank <= 3): the Cholesky
    shortcut must give way to pinv (whose cut-off then matters), as pyiqa computes it."""
    cov = np.diag(np.diag(pristine["cov"])[:10].tolist() + [0.0] * 26)
    path = niqe.save_pristine(tmp_path / "singular.mat", pristine["mu"], cov)
    x = rgb01([smooth_image(np.random.default_rng(13), 192, 192, True) for _ in range(3)])
    pinv, calls = torch.linalg.pinv, []
    monkeypatch.setattr(torch.linalg, "pinv", lambda m, **kw: calls.append(len(m)) or pinv(m, **kw))
    scores = niqe.NiqeScorer.from_file(path).score(niqe.y_channel(x))
    assert calls == [3]  # all three images took the pinv path
    monkeypatch.undo()
    ref = pyiqa.create_metric("niqe", pretrained_model_path=str(path), device="cpu")(x).reshape(-1).double()
    assert torch.isfinite(ref).all()
    assert_close(scores, ref)
    assert not torch.allclose(scores, pristine["pyiqa"](x).reshape(-1).double(), rtol=1e-3)  # it did change


def test_scores_do_not_depend_on_chunking_reused_buffers_or_rgb_entry_point(pristine: dict) -> None:
    rng = np.random.default_rng(17)
    a = rgb01([smooth_image(rng, 192, 192, i % 2 == 0) for i in range(5)])
    b = rgb01([smooth_image(rng, 384, 288, True) for _ in range(2)])
    mu, cov = torch.from_numpy(pristine["mu"]), torch.from_numpy(pristine["cov"])
    fresh_a = niqe.NiqeScorer(mu, cov, "cpu").score(niqe.y_channel(a))
    fresh_b = niqe.NiqeScorer(mu, cov, "cpu").score(niqe.y_channel(b))
    reused = niqe.NiqeScorer(mu, cov, "cpu", chunk=2)  # partial last chunks, buffers shared across sizes
    runs = [reused.score_rgb(a), reused.score_rgb(b), reused.score([niqe.y_channel(a[:3]), niqe.y_channel(a[3:])])]
    assert torch.isfinite(fresh_a).all() and len(set(fresh_a.tolist())) == 5
    assert torch.equal(runs[0], fresh_a) and torch.equal(runs[1], fresh_b) and torch.equal(runs[2], fresh_a)


def test_pristine_file_is_read_by_pyiqa_and_load_pristine_bit_for_bit(pristine: dict, tmp_path) -> None:
    path = pristine["path"]
    data = path.read_bytes()
    assert data[:116] == niqe.MAT_HEADER
    net = pyiqa.archs.niqe_arch.NIQE(pretrained_model_path=str(path))
    assert np.array_equal(net.mu_pris_param.numpy(), pristine["mu"])
    assert np.array_equal(net.cov_pris_param.numpy(), pristine["cov"])
    mu, cov, block = niqe.load_pristine(path)
    assert np.array_equal(mu, pristine["mu"]) and np.array_equal(cov, pristine["cov"]) and cov.shape == (36, 36)
    assert block == 96
    again = niqe.save_pristine(tmp_path / "again.mat", mu, cov, block)
    assert again.read_bytes() == data  # equal parameters, equal files (fixed header)
    small = niqe.save_pristine(tmp_path / "small.mat", mu, cov, 48)
    assert niqe.load_pristine(small)[2] == 48 and niqe.NiqeScorer.from_file(small).block == 48


def test_fit_pristine_drops_non_finite_rows_and_matches_numpy() -> None:
    f = np.random.default_rng(3).normal(size=(100, 36))
    f[[4, 50], 7] = np.nan
    mu, cov = niqe.fit_pristine(f)
    kept = np.delete(f, [4, 50], 0)
    assert np.array_equal(mu, kept.mean(0)) and np.array_equal(cov, np.cov(kept.T))
    with pytest.raises(ValueError, match="more reference images"):
        niqe.fit_pristine(f[:50])


def test_colour_planes_are_luminance_and_bt601_chroma_and_their_features_sit_side_by_side() -> None:
    """The colour variant: plane 0 is pyiqa's luminance, planes 1-2 JPEG's Cb and Cr; its 108 features are NIQE's
    36 of each plane, so a model fitted on them scores colour; a scorer refuses planes its model does not read."""
    rng = np.random.default_rng(5)
    x = rgb01([smooth_image(rng, 192, 192, True) for _ in range(3)])
    planes = niqe.colour_planes(x)
    assert torch.equal(planes[:, :1], niqe.y_channel(x))
    rgb = torch.tensor([[[[1.0]], [[0.0]], [[0.0]]]])  # pure red: Cb = 128 - 0.168736 * 255, Cr = 128 + 127.5
    assert niqe.colour_planes(rgb).flatten().tolist() == [76.0, 85.0, 256.0]
    features = niqe.plane_features(planes)
    assert features.shape == (3, 4, 108)
    for i in range(3):
        assert torch.equal(features[..., 36 * i : 36 * (i + 1)], niqe.niqe_features(planes[:, i : i + 1]))
    mu, cov = niqe.fit_pristine(features.reshape(-1, 108).numpy().repeat(20, 0) + rng.normal(0, 1e-2, (240, 108)))
    scorer = niqe.NiqeScorer(torch.from_numpy(mu), torch.from_numpy(cov), "cpu")
    assert scorer.planes == 3 and torch.equal(scorer.score_rgb(x), scorer.score(planes))
    with pytest.raises(ValueError, match=r"reads 3 plane\(s\) per image, got 1"):
        scorer.score(niqe.y_channel(x))


def test_a_matrix_whose_cholesky_fails_at_a_zero_pivot_falls_back_to_pinv() -> None:
    """A zero pristine covariance and a single block per image make (cov + cov_d) / 2 the zero matrix: its Cholesky
    factor has a zero pivot (which cholesky_inverse refuses); the image then scores through pinv (pinv(0) = 0) as
    pyiqa would, and the well-conditioned image beside it keeps its Cholesky score."""
    rng = np.random.default_rng(5)
    features = torch.from_numpy(rng.normal(size=(2, 40, 36)))
    features[0, 1:] = torch.nan  # image 0: one usable block, so its own covariance is 0
    mu = torch.from_numpy(rng.normal(size=36))
    zero = niqe.niqe_score(features[:1], mu, torch.zeros(36, 36))
    assert zero.tolist() == [0.0]
    cov = torch.eye(36, dtype=torch.float64)
    both = niqe.niqe_score(features, mu, cov)
    d = mu - features[1].mean(0)
    m = (cov + torch.from_numpy(np.cov(features[1].numpy().T))) / 2
    assert torch.isclose(both[1], (d @ torch.linalg.pinv(m) @ d).sqrt(), rtol=1e-10)
