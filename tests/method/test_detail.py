"""matched_detail: q of a generated image against its matched training images (method/detail.py).

Tolerances: the statistics are float32 sums and a float64 log; these tests compare orderings and gaps of whole log
units, or the same function on the same input (bit for bit on one machine), never digits across machines.
"""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from gmv_dagster.evaluation.near_copies import near_copy, photo_crops
from gmv_dagster.method import detail
from gmv_dagster.method.quality import DEFAULT_METRIC, calibrate, load_quality_model
from gmv_dagster.sources.images import read_idx


def blur(image, sigma):
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(sigma)))


def noise(image, sd, seed=0):
    return np.clip(np.rint(image + np.random.default_rng(seed).normal(0, sd, image.shape)), 0, 255).astype(np.uint8)


def jpeg(image, quality):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB" if image.ndim == 3 else "L"))


@pytest.fixture(scope="module")
def crops():
    return photo_crops(60, size=64, seed=0)


def test_statistics_move_the_way_each_degradation_moves_them(crops):
    clean = np.array([detail.detail_features(c) for c in crops])
    blurred = np.array([detail.detail_features(blur(c, 2)) for c in crops])
    noisy = np.array([detail.detail_features(noise(c, 25)) for c in crops])
    blocky = np.array([detail.detail_features(jpeg(c, 10)) for c in crops])
    assert np.all(blurred[:, 0] < clean[:, 0] - 1.0)  # blur: detail down by more than e
    assert np.all(noisy[:, 1] > clean[:, 1])  # noise: the smoothest cells get noisier
    assert np.median(blocky[:, 2] - clean[:, 2]) > 0.3  # JPEG's 8-px grid


def test_statistics_are_finite_for_blank_flat_and_tiny_images():
    flat = np.zeros((40, 40, 3), np.uint8)
    flat[:, 20:] = (200, 30, 30)  # two flat colours: no chroma texture anywhere (NIQE calls this undefined)
    for image in (np.zeros((4, 4), np.uint8), np.full((96, 96), 255, np.uint8), flat, np.zeros((5, 300), np.uint8)):
        assert np.all(np.isfinite(detail.detail_features(image)))
    with pytest.raises(ValueError, match="at least 4 x 4"):
        detail.detail_features(np.zeros((3, 10), np.uint8))


def test_luminance_of_grey_and_colour_images_agree():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    np.testing.assert_allclose(detail.luminance(np.repeat(grey[..., None], 3, axis=2)), grey, atol=1e-4)
    np.testing.assert_array_equal(detail.luminance(grey[..., None]), grey)


def _model(train, tmp_path):
    return load_quality_model(calibrate(DEFAULT_METRIC, train, seed=0, work_dir=tmp_path))


def test_clean_copies_score_high_and_degraded_copies_low(crops, tmp_path):
    model = _model(crops, tmp_path)
    rng = np.random.default_rng(0)
    sources = crops[:30]
    clean = [near_copy(c, 0.5, rng) for c in sources]
    refs = [[s] for s in sources]
    q = {
        name: model.score(images, references=refs)[1]
        for name, images in {
            "identical": sources,
            "clean": clean,
            "blur": [blur(c, 2) for c in clean],
            "noise": [noise(c, 25, i) for i, c in enumerate(clean)],
            "jpeg": [jpeg(c, 10) for c in clean],
        }.items()
    }
    # no departure from the reference: exactly 1, but where the source lies outside the training set's fences
    inside = [
        np.all((f >= model.raw_score.fences.low) & (f <= model.raw_score.fences.high))
        for f in map(detail.detail_features, sources)
    ]
    assert q["identical"][inside].tolist() == [1.0] * sum(inside) and sum(inside) >= 25
    assert np.median(q["clean"]) > 0.8
    for kind in ("blur", "noise", "jpeg"):
        assert np.mean(q["clean"][:, None] > q[kind][None, :]) > 0.9, kind
    assert np.median(q["blur"]) < 0.2 and np.median(q["noise"]) < 0.2
    # a heavy blur hands out no credit at all: q exactly 0, as the anchored mapping gives noise
    assert np.median(model.score([blur(c, 4) for c in clean], references=refs)[1]) == 0.0


def test_a_clean_flat_colour_drawing_keeps_q_one(tmp_path):
    """NIQE's colour model leaves such an image undefined (q = 0); against its source it departs in nothing."""
    drawings = []
    for i in range(12):
        a = np.full((64, 64, 3), 255, np.uint8)
        a[8 + i : 40 + i, 10:50] = (30 * i % 256, 0, 200)
        drawings.append(a)
    model = _model(drawings, tmp_path)
    _, q = model.score(drawings, references=[[d] for d in drawings])
    assert q.tolist() == [1.0] * 12


def test_q_is_one_within_the_margins_and_falls_linearly_to_zero():
    params = detail.DetailParams()
    dep = np.array(
        [
            [params.blur_margin, 0.0, 0.0],
            [params.blur_margin + params.blur_scale / 2, 0.0, 0.0],
            [params.blur_margin + 3 * params.blur_scale, 0.0, 0.0],
            [-5.0, -5.0, -5.0],
        ]
    )
    np.testing.assert_allclose(detail.q_from_raw(detail.raw_from_departures(dep, params)), [1.0, 0.5, 0.0, 1.0])


def test_q_follows_the_worst_departure_not_their_sum():
    """Half a scale of blur and half a scale of blocking: q = 0.5 (their sum would give 0)."""
    params = detail.DetailParams()
    dep = np.array(
        [[params.blur_margin + params.blur_scale / 2, 0.0, params.blocking_margin + params.blocking_scale / 2]]
    )
    np.testing.assert_allclose(detail.q_from_raw(detail.raw_from_departures(dep, params)), [0.5])
    assert np.isnan(detail.raw_from_departures(np.array([[np.nan, 0.0, 0.0]]), params)[0])


def test_references_are_the_matches_about_as_near_as_the_nearest():
    """Of the top 3, those within reference_ratio x the nearest's distance, a prefix of the sorted row: a near-copy
    (source far nearer than the rest) keeps its source alone, a novel image (three about as near) all three."""
    params = detail.DetailParams(reference_ratio=1.5)
    distances = np.array(
        [
            [0.01, 0.20, 0.25, 0.30],  # a near-copy: its source
            [0.20, 0.25, 0.29, 0.30],  # a novel image: all three (the fourth is beyond `references`)
            [0.20, 0.31, 0.25, 0.30],  # (unsorted past the first miss: a prefix all the same)
            [0.00, 0.00, 0.10, 0.10],  # an exact copy of two identical images
            [-1e-7, 1e-7, 0.1, 0.2],  # cosine's rounding below 0
            [0.10, np.inf, np.inf, np.inf],  # an image with one match
            [0.10, np.nan, np.nan, np.nan],
        ]
    )
    np.testing.assert_array_equal(detail.reference_counts(distances, params), [1, 3, 1, 2, 1, 1, 1])
    np.testing.assert_array_equal(detail.reference_counts(distances[:, :0], params), [0] * 7)
    with pytest.raises(ValueError, match="reference_ratio must be >= 1"):
        detail.DetailParams(reference_ratio=0.9)


def test_the_most_lenient_reference_counts():
    fences = detail.Fences((-1e9,) * 3, (1e9,) * 3)
    generated = np.array([[5.0, 2.0, 0.0]])
    refs = np.array([[[8.0, 1.0, 0.0], [5.5, 2.5, 0.5], [np.nan] * 3]])  # the second is as smooth and as noisy
    np.testing.assert_allclose(detail.departures(generated, refs, fences), [[0.5, -0.5, -0.5]])


def test_a_copy_of_a_noise_training_image_is_noisy_all_the_same(tmp_path, fashion_mnist_dir):
    """References count only inside the training set's fences: copying an outlier of the training set (noise, as C3
    plants) does not make noise clean."""
    train = list(read_idx(fashion_mnist_dir / "train-images-idx3-ubyte.gz")[:300])
    pure_noise = np.random.default_rng(1).integers(0, 256, (28, 28), dtype=np.uint8)
    model = _model(train + [pure_noise], tmp_path)
    _, q = model.score([pure_noise, train[5]], references=[[pure_noise], [train[5]]])
    assert q[0] == 0.0 and q[1] == 1.0


def test_references_are_required_and_resized_to_the_generated_size(crops, tmp_path):
    model = _model(crops, tmp_path)
    assert model.references == detail.DetailParams().references
    with pytest.raises(ValueError, match="give references"):
        model.score(crops[:2])
    big = [np.asarray(Image.fromarray(c).resize((128, 128), Image.BICUBIC)) for c in crops[:10]]
    _, q_small_refs = model.score(big, references=[[c] for c in crops[:10]])
    _, q_same = model.score(big, references=[[b] for b in big])
    assert q_same.tolist() == [1.0] * 10
    # a 64-px reference is brought to 128 px before it is compared (not compared at its own scale)
    assert np.median(q_small_refs) > 0.8


def test_calibration_is_named_by_content_and_refuses_a_changed_file(crops, tmp_path):
    a = calibrate(DEFAULT_METRIC, crops, seed=0, work_dir=tmp_path)
    assert a == calibrate(DEFAULT_METRIC, crops, seed=0, work_dir=tmp_path)
    other = calibrate(DEFAULT_METRIC, crops[:30], seed=0, work_dir=tmp_path)
    assert other.params_file != a.params_file
    with open(a.params_file, "a") as f:
        f.write(" ")
    with pytest.raises(ValueError, match="missing or changed"):
        load_quality_model(a)


def test_progress_counts_every_image(crops, tmp_path):
    calls = []
    calibrate(DEFAULT_METRIC, crops, seed=0, work_dir=tmp_path, progress=lambda n, total: calls.append((n, total)))
    assert sum(n for n, _ in calls) == len(crops) and {t for _, t in calls} == {len(crops)}


def test_statistics_measured_beforehand_give_the_same_q_and_only_at_their_own_size(crops, tmp_path):
    """The pipeline measures every training image once (training_details) and passes those statistics; a generated
    image of another size reads its reference's image instead (same function, same arrays: equal bit for bit on one
    machine)."""
    from gmv_dagster.sources.images import ImageSequence

    model = _model(crops, tmp_path)
    uris = []
    for i, c in enumerate(crops[:20]):
        uris.append(str(tmp_path / f"t{i}.png"))
        Image.fromarray(c).save(uris[-1])
    generated = [blur(c, 1) for c in crops[:10]]
    refs = [ImageSequence(uris[i : i + 3]) for i in range(10)]
    sizes, stats = detail.measure(ImageSequence(uris))
    measured = {(u, tuple(int(x) for x in hw)): f for u, hw, f in zip(uris, sizes, stats)}
    read = model.score_parts(generated, references=refs)
    known = model.score_parts(generated, references=refs, measured=measured)
    np.testing.assert_array_equal(known[0], read[0])
    np.testing.assert_array_equal(known[2], read[2])
    # a wrong statistic at the generated size is used (proof that it is read from `measured`; the fences bound it) ...
    wrong = {key: value + [0.0, 0.0, 5.0] for key, value in measured.items()}
    assert np.all(model.score_parts(generated, references=refs, measured=wrong)[2][:, 2] < read[2][:, 2] - 0.3)
    # ... and ignored for a generated image of another size, whose references are read and resized
    bigger = [np.asarray(Image.fromarray(g).resize((96, 96), Image.BICUBIC)) for g in generated]
    np.testing.assert_array_equal(
        model.score_parts(bigger, references=refs, measured=wrong)[2], model.score_parts(bigger, references=refs)[2]
    )


def test_an_image_too_small_to_measure_gets_q_zero_and_a_note_and_the_batch_goes_on(crops, tmp_path):
    model = _model(crops, tmp_path)
    tiny = crops[0][:3, :3]
    raw, q, _ = model.score_parts([tiny, crops[1]], references=[[crops[0]], [crops[1]]])
    assert q.tolist() == [0.0, 1.0]
    assert model.unscored(raw)[0].startswith("matched_detail cannot measure an image under 4 x 4 px")
    assert model.unscored(raw)[1] is None


def test_arrays_of_other_forms_are_measured_as_their_uint8_image():
    grey = photo_crops(1, size=32, seed=3)[0].mean(axis=2).astype(np.uint8)
    expected = detail.detail_features(grey)
    np.testing.assert_array_equal(detail.detail_features(grey[..., None]), expected)  # H x W x 1
    np.testing.assert_array_equal(detail.detail_features(grey / 255.0), expected)  # floats in [0, 1]


def test_settings_refuse_a_zero_scale():
    with pytest.raises(ValueError, match="scales > 0"):
        detail.DetailParams(noise_scale=0.0)
