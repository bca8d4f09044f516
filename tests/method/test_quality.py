"""q in [0, 1]; the default scorer ranks noise and blur below clean images on Fashion-MNIST."""

import contextlib

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from gmv_dagster.common.tensors import WeightsNotFoundError
from gmv_dagster.evaluation.criteria import rank_auc
from gmv_dagster.evaluation.near_copies import photo_crops
from gmv_dagster.method.quality import (
    UNSCORED_NIQE,
    AnchoredMapping,
    calibrate,
    calibration_split,
    load_quality_model,
    niqe_input,
)
from gmv_dagster.sources.images import read_idx


@contextlib.contextmanager
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def test_anchored_mapping_clean_is_one_noise_is_zero_and_clipped():
    lower_better = AnchoredMapping(good=5.0, bad=40.0)
    np.testing.assert_allclose(lower_better(np.array([5.0, 22.5, 40.0, 0.0, 99.0])), [1, 0.5, 0, 1, 0])
    higher_better = AnchoredMapping(good=0.8, bad=0.2)
    np.testing.assert_allclose(higher_better(np.array([0.8, 0.5, 0.2])), [1, 0.5, 0])
    with pytest.raises(ValueError, match="do not separate"):
        AnchoredMapping(1.0, 1.0)(np.array([1.0]))


def test_progress_counts_every_image_and_changes_no_score(fashion_mnist_dir, tmp_path):
    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:100])
    test = list(read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:70])
    calls = []
    calibration = calibrate(
        "niqe_refit",
        train,
        seed=0,
        work_dir=tmp_path,
        batch_size=32,
        progress=lambda n, total: calls.append((n, total)),
    )
    # 80 fit the model, 20 clean and 20 noise anchor it
    assert sum(n for n, _ in calls) == 120 and {total for _, total in calls} == {120}
    assert calibration == calibrate("niqe_refit", train, seed=0, work_dir=tmp_path, batch_size=32)
    model = load_quality_model(calibration)
    calls.clear()
    raw, q = model.score(test, progress=lambda n, total: calls.append((n, total)))
    assert calls == [(64, 70), (6, 70)]  # one call per scoring batch
    silent_raw, silent_q = model.score(test)
    np.testing.assert_array_equal(raw, silent_raw)
    np.testing.assert_array_equal(q, silent_q)


def test_none_gives_q_one():
    raw, q = load_quality_model(calibrate("none", [])).score([np.zeros((8, 8), np.uint8)] * 3)
    assert q.tolist() == [1.0, 1.0, 1.0]


def test_default_scores_noise_and_blur_below_clean(fashion_mnist_dir, tmp_path):
    train = read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:200]
    test = read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:40]
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, test.shape, dtype=np.uint8)
    blur = TF.gaussian_blur(torch.from_numpy(test)[:, None], kernel_size=9, sigma=3.0)[:, 0].numpy()
    model = load_quality_model(calibrate("niqe_refit", list(train), seed=0, work_dir=tmp_path))
    q = {name: model.score(list(images))[1] for name, images in [("clean", test), ("noise", noise), ("blur", blur)]}
    assert np.all((q["clean"] >= 0) & (q["clean"] <= 1))
    assert np.median(q["clean"]) > 0.7
    # q's level depends on its anchors (noise = 0): what must hold is a clear gap, then the per-image order
    assert np.median(q["noise"]) < 0.1 and np.median(q["blur"]) < np.median(q["clean"]) - 0.4
    # per image, not just on average
    assert np.mean(q["clean"][:, None] > q["noise"][None, :]) > 0.99
    assert np.mean(q["clean"][:, None] > q["blur"][None, :]) > 0.95


@pytest.mark.parametrize("metric", ["maniqa", "topiq_nr", "musiq"])
def test_metric_without_its_weights_file_says_which_file(metric, tmp_path):
    images = [np.zeros((8, 8), np.uint8)] * 10
    with pytest.raises(WeightsNotFoundError, match=f"{metric} needs its weights file"):
        calibrate(metric, images, weights_path=str(tmp_path / "missing.pth"))


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="must be one of"):
        calibrate("brisk", [])


def test_a_refit_on_the_same_images_writes_the_same_file(tmp_path, monkeypatch):
    """The MAT header's timestamp is fixed, so equal parameters give an equal file, name and data version."""
    import time as time_module

    from gmv_dagster.method.quality import fit_niqe_params

    images = [np.random.default_rng(i).integers(0, 256, (32, 32), dtype=np.uint8) for i in range(60)]
    first = fit_niqe_params(images, tmp_path / "a" / "niqe.mat")
    monkeypatch.setattr(time_module, "asctime", lambda *a: "Thu Jan  1 00:00:00 2099")  # another "now"
    second = fit_niqe_params(images, tmp_path / "b" / "niqe.mat")
    assert first.name == second.name and first.read_bytes() == second.read_bytes()


def test_the_calibration_split_is_a_seeded_shuffle_not_the_first_80_percent():
    """Reference images arrive sorted (folder sources by class): a plain cut anchored q = 1 on the last classes,
    which the fit never saw. The anchor rows must come from across the whole range, the same for the same seed."""
    fit, anchor = calibration_split(1000, seed=0)
    assert len(fit) == 800 and len(anchor) == 200 and not set(fit) & set(anchor)
    assert sorted([*fit, *anchor]) == list(range(1000))
    assert np.histogram(anchor, bins=10, range=(0, 1000))[0].min() >= 10  # every tenth (class) is anchored
    again = calibration_split(1000, seed=0)
    assert np.array_equal(fit, again[0]) and not np.array_equal(anchor, calibration_split(1000, seed=1)[1])


def test_a_blank_image_gets_q_zero_and_a_note_and_the_batch_keeps_its_scores(fashion_mnist_dir, tmp_path):
    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:100])
    test = list(read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:5])
    model = load_quality_model(calibrate("niqe_refit", train, seed=0, work_dir=tmp_path))
    alone_raw, alone_q = model.score(test)
    raw, q = model.score([*test[:2], np.full((28, 28), 200, np.uint8), *test[2:]])
    assert np.isnan(raw[2]) and q[2] == 0.0
    np.testing.assert_array_equal(np.delete(raw, 2), alone_raw)
    np.testing.assert_array_equal(np.delete(q, 2), alone_q)
    assert model.unscored(raw) == [None, None, f"{UNSCORED_NIQE}; q = 0", None, None, None]


def test_the_working_size_keeps_the_aspect_ratio_and_large_images_keep_their_detail():
    wide = niqe_input(np.zeros((28, 56), np.uint8), 96)
    assert wide.shape == (192, 384, 3)  # scaled 192/28 on both axes, not squeezed to a square
    assert niqe_input(np.zeros((28, 56), np.uint8), 48).shape == (96, 192, 3)  # two blocks of 48 px, not of 96
    large = np.random.default_rng(0).integers(0, 256, (600, 1000, 3), dtype=np.uint8)
    assert niqe_input(large, 96).shape == (384, 576, 3)  # shorter side to 384, centre-cropped to whole 96-px blocks
    assert niqe_input(large, 48).shape == (192, 288, 3)  # shorter side to 4 blocks of 48 px
    native = large[:288, :480]
    assert np.array_equal(niqe_input(native, 96), native)  # within [192, 384] and whole blocks: untouched


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 3), (30, 45, 3), (500, 700, 3)])
def test_the_working_image_is_pil_bicubic_resize_bit_for_bit(shape: tuple) -> None:
    """Enlarging runs as compiled loops (common.resample.enlarge), shrinking through PIL: either way, PIL's pixels, for
    the luminance and the colour model."""
    img = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    for grey in (True, False):
        mode = "L" if grey and len(shape) == 2 else "RGB"
        pil = Image.fromarray(img).convert(mode)
        short = min(shape[:2])
        scale = min(max(short, 192), 384) / short
        ref = np.asarray(pil.resize((round(shape[1] * scale), round(shape[0] * scale)), Image.BICUBIC))
        ch, cw = ref.shape[0] // 96 * 96, ref.shape[1] // 96 * 96
        top, left = (ref.shape[0] - ch) // 2, (ref.shape[1] - cw) // 2
        assert np.array_equal(niqe_input(img, 96, grey_as_luminance=grey), ref[top : top + ch, left : left + cw])


def test_scoring_reads_one_batch_of_images_at_a_time(fashion_mnist_dir, tmp_path):
    class Recording(list):
        def __init__(self, items):
            super().__init__(items)
            self.reads = []

        def __getitem__(self, index):
            if isinstance(index, slice):
                self.reads.append(len(range(*index.indices(len(self)))))
            return super().__getitem__(index)

    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:100])
    test = Recording(read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:50])
    model = load_quality_model(calibrate("niqe_refit", train, seed=0, work_dir=tmp_path), batch_size=16)
    model.score(test)
    assert sorted(test.reads, reverse=True) == [16, 16, 16, 2]  # batches run on threads: any order


@pytest.mark.parametrize("phase_batches, phase_bytes, most", [(2, 10**9, 2), (16, 1, "threads")])
def test_images_are_read_on_the_calling_thread_in_bounded_phases_before_they_are_scored(
    monkeypatch, phase_batches, phase_bytes, most
):
    """Reading beside the scoring threads fought them for the GIL (docs/PERFORMANCE.md): a phase of batches is read
    on the calling thread, then scored on threads; never more than a phase (batches, or bytes but at least a batch per
    thread) is held."""
    import threading

    from gmv_dagster.method import quality

    monkeypatch.setattr(quality, "READ_PHASE_BATCHES", phase_batches)
    monkeypatch.setattr(quality, "READ_PHASE_BYTES", phase_bytes)
    events, caller = [], threading.get_ident()

    class Source(list):
        def __getitem__(self, index):
            events.append(("read", threading.get_ident()))
            return super().__getitem__(index)

    def score(batch):
        events.append(("score", threading.get_ident()))
        return np.full(len(batch), float(batch[0][0, 0]))

    images = Source([np.full((4, 4), i, np.uint8) for i in range(9)])
    out = quality._map_batches(images, 2, score, "cpu", None)
    assert np.concatenate(out).tolist() == [0, 0, 2, 2, 4, 4, 6, 6, 8]  # in order
    assert all(thread == caller for kind, thread in events if kind == "read")
    held = np.cumsum([1 if kind == "read" else -1 for kind, _ in events])
    threads = min(torch.get_num_threads(), quality.NIQE_MAX_THREADS, 5)  # 5 batches of 2
    assert held.max() == (threads if most == "threads" else most) and held[-1] == 0


def test_colour_photos_get_the_colour_model_and_blur_and_noise_rank_below_clean(tmp_path):
    """On colour images NIQE's luminance misses colour noise and much of blur; the colour model (Y, Cb, Cr planes)
    is fitted whenever the training images have colour. A grey image cannot be scored by it: q = 0, with a note."""
    from PIL import Image, ImageFilter

    from gmv_dagster.method.niqe import NiqeScorer

    crops = photo_crops(300, size=64, seed=0)
    train, test = crops[:250], crops[250:]
    calibration = calibrate("niqe_refit", train, seed=0, work_dir=tmp_path)
    assert NiqeScorer.from_file(calibration.params_file).planes == 3
    model = load_quality_model(calibration)
    rng = np.random.default_rng(0)
    blurred = [np.asarray(Image.fromarray(c).filter(ImageFilter.GaussianBlur(1.5))) for c in test]
    noisy = [np.clip(c + rng.normal(0, 10, c.shape), 0, 255).astype(np.uint8) for c in test]
    clean_q = model.score(test)[1]
    assert rank_auc(clean_q, model.score(blurred)[1]) >= 0.95
    assert rank_auc(clean_q, model.score(noisy)[1]) >= 0.99
    grey = np.asarray(Image.fromarray(test[0]).convert("L"))
    raw, q = model.score([grey])
    assert q.tolist() == [0.0] and "grey image scored against a colour training set" in model.unscored(raw)[0]


def test_a_grey_image_scores_the_same_as_one_plane_or_as_rgb(fashion_mnist_dir, tmp_path):
    """Grey images take a one-plane path (a third of the work); pyiqa's luminance of R = G = B is the grey level,
    so the score must be bit for bit that of the RGB path."""
    from gmv_dagster.method.niqe import NiqeScorer

    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:100])
    test = list(read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:20])
    calibration = calibrate("niqe_refit", train, seed=0, work_dir=tmp_path)
    grey_raw, _ = load_quality_model(calibration).score(test)
    assert niqe_input(test[0], grey_as_luminance=True).ndim == 2 and niqe_input(test[0]).ndim == 3
    rgb = torch.from_numpy(np.stack([niqe_input(i) for i in test])).permute(0, 3, 1, 2).float() / 255.0
    with one_torch_thread():  # as the pipeline scores: a multi-threaded bmm differs in the last bits
        rgb_raw = NiqeScorer.from_file(calibration.params_file).score_rgb(rgb).numpy()
    assert np.isfinite(grey_raw).all() and len(set(grey_raw.tolist())) == 20
    np.testing.assert_array_equal(grey_raw, rgb_raw)


def test_too_few_reference_images_for_the_niqe_fit_name_the_setting_to_raise(fashion_mnist_dir, tmp_path):
    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:12])  # 9 fit images: 36 blocks < 72
    with pytest.raises(
        ValueError,
        match=r"needs at least 72 image blocks.*gave 36.*Raise quality_calibration's "
        r"reference_size",
    ):
        calibrate("niqe_refit", train, seed=0, work_dir=tmp_path)


def test_a_smaller_niqe_block_is_recorded_with_the_parameters_and_scored_at(fashion_mnist_dir, tmp_path):
    from gmv_dagster.method.niqe import NiqeScorer

    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:100])
    test = list(read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:10])
    default, small = (calibrate("niqe_refit", train, seed=0, work_dir=tmp_path, niqe_block=b) for b in (96, 48))
    assert (default.niqe_block, small.niqe_block) == (96, 48)
    assert NiqeScorer.from_file(small.params_file).block == 48  # the file says how it was fitted
    model = load_quality_model(small)
    assert model.describe()["niqe_block"] == 48
    scorer = NiqeScorer.from_file(small.params_file)
    planes = torch.from_numpy(np.stack([niqe_input(i, 48, grey_as_luminance=True) for i in test]))[:, None].float()
    assert planes.shape[-2:] == (96, 96)
    with one_torch_thread():
        direct = scorer.score(planes).numpy()
    np.testing.assert_array_equal(model.score(test)[0], direct)


def test_scoring_batches_side_by_side_on_threads_gives_the_same_bits_as_one_thread(fashion_mnist_dir, tmp_path):
    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:100])
    test = list(read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:50])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = calibrate("niqe_refit", train, seed=0, work_dir=tmp_path / "one", batch_size=8)
        one_raw = load_quality_model(one, batch_size=8).score(test)[0]
        torch.set_num_threads(3)  # three batches side by side, even on a smaller machine
        three = calibrate("niqe_refit", train, seed=0, work_dir=tmp_path / "three", batch_size=8)
        three_raw = load_quality_model(three, batch_size=8).score(test)[0]
        assert torch.get_num_threads() == 3  # restored after the batches ran single-threaded inside
    finally:
        torch.set_num_threads(threads)
    assert one.params_sha256 == three.params_sha256 and (one.good, one.bad) == (three.good, three.bad)
    np.testing.assert_array_equal(one_raw, three_raw)


def test_a_single_batch_scores_the_same_bits_as_many_small_ones_on_a_multi_threaded_torch(fashion_mnist_dir, tmp_path):
    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:100])
    test = list(read_idx(fashion_mnist_dir / "t10k-images-idx3-ubyte.gz")[:48])
    calibration = calibrate("niqe_refit", train, seed=0, work_dir=tmp_path)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        whole = load_quality_model(calibration, batch_size=64).score(test)[0]  # one batch: no thread pool
        pieces = load_quality_model(calibration, batch_size=8).score(test)[0]
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(whole, pieces)
