"""q in [0, 1]; the default scorer ranks noise and blur below clean images on Fashion-MNIST."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from gmv_dagster.common.tensors import WeightsNotFoundError
from gmv_dagster.method.quality import AnchoredMapping, calibrate, load_quality_model
from gmv_dagster.sources.images import read_idx


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
    calibration = calibrate("niqe_refit", train, seed=0, work_dir=tmp_path, batch_size=32,
                            progress=lambda n, total: calls.append((n, total)))
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
    assert np.median(q["noise"]) < 0.1 and np.median(q["blur"]) < 0.3
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
