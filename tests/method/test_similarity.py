"""The learned similarity, the aligned re-rank distance and the near-copy benchmark builder.

Every image set is made here, with a known answer: textures fine enough that a shift of a
few pixels decorrelates them (so raw pixels lose the source), and, in colour, pairs that share
one luminance texture and differ only in chroma (so a grey method cannot tell them apart).
"""

import dataclasses
import hashlib

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from gmv_dagster.evaluation.near_copies import near_copy, near_copy_set, photo_crops
from gmv_dagster.method.aligned import aligned_distance, fused_distance
from gmv_dagster.method.embedders import Embedder
from gmv_dagster.method.similarity import (
    INFERENCE_FORM,
    SimilarityParams,
    detect_channels,
    embedder_kwargs,
    inference_net,
    load_similarity,
    state_dict_sha256,
    to_tensor_batch,
    train_similarity,
)

TINY = SimilarityParams(image_size=16, width=8, dim=16, steps=3, batch_size=16, warmup_steps=1)
QUICK = SimilarityParams(image_size=24, width=16, steps=25, batch_size=64, warmup_steps=5)


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    f = gaussian_filter(rng.normal(size=(size, size)), 1.5, mode="wrap") * 2 + gaussian_filter(
        rng.normal(size=(size, size)), 0.8, mode="wrap"
    )
    return (f - f.mean()) / f.std()


def grey_set(n: int = 60, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(128 + 45 * texture(rng, size), 0, 255).astype(np.uint8) for _ in range(n)]


def colour_set(n: int = 60, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    """n / 2 textures, each twice: the same luma, opposite chroma (red-ish / green-ish)."""
    rng = np.random.default_rng(seed)
    chroma = np.array([0.5, -0.5 * 0.299 / 0.587, 0.0])  # adds no luma (ITU-R 601 weights)
    out = []
    for _ in range(n // 2):
        f = texture(rng, size)
        for sign in (1, -1):
            img = (128 + 40 * f)[..., None] + 60 * sign * chroma * (1 + 0.3 * f[..., None])
            out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def pixel_embed(images: list[np.ndarray], channels: int = 1) -> np.ndarray:
    """The project's default embedder: pixels, 32 px, grey (colour with channels=3)."""
    v = to_tensor_batch(images, 32, channels).flatten(1).numpy()
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def top1(train, copies, rows, embed) -> float:
    te, qe = embed(train), embed(copies)
    return float(((qe @ te.T).argmax(1) == rows).mean())


def sha(model) -> str:
    return state_dict_sha256(model.module)


# --- determinism, save / load ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_images():
    return grey_set(24, 20, seed=5)


def test_same_seed_same_weights_other_seed_other_weights(tiny_images):
    calls = []
    a = train_similarity(tiny_images, TINY, progress=lambda s, n: calls.append((s, n)))
    b = train_similarity(tiny_images, TINY)
    c = train_similarity(tiny_images, dataclasses.replace(TINY, seed=1))
    assert sha(a) == sha(b)
    assert sha(a) != sha(c)
    assert calls == [(3, 3)]  # every 10 steps and at the end
    assert a.info["steps_done"] == 3 and not a.info["stopped_early"]


def test_training_runs_on_the_configured_thread_count_and_gives_the_callers_back(tiny_images):
    """The weights are bit-identical for a seed only at a fixed thread count: training sets torch's to
    `SimilarityParams.num_threads` while it runs (seen from the progress callback, called inside training) and
    restores the caller's afterwards, also when training fails."""
    caller = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        during = []
        train_similarity(
            tiny_images,
            dataclasses.replace(TINY, num_threads=2),
            progress=lambda s, n: during.append(torch.get_num_threads()),
        )
        assert during == [2]
        assert torch.get_num_threads() == 1

        def fail(step, steps):
            raise RuntimeError("stop")

        with pytest.raises(RuntimeError, match="stop"):
            train_similarity(tiny_images, dataclasses.replace(TINY, num_threads=2), progress=fail)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(caller)


def test_save_load_round_trip_gives_the_same_embeddings(tmp_path, tiny_images):
    model = train_similarity(tiny_images, TINY)
    path = model.save(tmp_path / "sim.pt")
    blob = torch.load(path, map_location="cpu", weights_only=True)  # tensors and plain types only
    assert blob["format"] == "gmv-similarity/1" and blob["channels"] == 1
    # equal models, equal bytes: another file name, another training's wall time, the same SHA-256 (the fingerprint)
    model.info["seconds"] += 1.0
    assert model.save(tmp_path / "other.tmp123.pt").read_bytes() == path.read_bytes()
    assert "seconds" not in blob["info"] and blob["info"]["steps_done"] == model.info["steps_done"]
    loaded = load_similarity(path)
    assert loaded.params == model.params and loaded.channels == 1 and sha(loaded) == sha(model)

    def embed(m, **kw):
        return Embedder(**embedder_kwargs(m)).embed(tiny_images, **kw)  # as the pipeline embeds

    e1, e2 = embed(model), embed(loaded)
    assert e1.dtype == np.float32 and e1.shape == (24, 16)
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_allclose(np.linalg.norm(e1, axis=1), 1.0, rtol=1e-5)
    # eval mode: the batch does not matter (beyond float rounding of differently blocked matmuls)
    np.testing.assert_allclose(e1, embed(model, batch_size=5), atol=1e-6)
    kw = embedder_kwargs(path)
    assert (kw["image_size"], kw["channels"], kw["dim"]) == (16, 1, 16)
    with torch.inference_mode():
        f = kw["features"](to_tensor_batch(tiny_images, 16, 1)).numpy()
    np.testing.assert_allclose(f / np.linalg.norm(f, axis=1, keepdims=True), e1, atol=1e-6)


def test_the_net_embeds_with_batchnorm_folded_equal_to_the_trained_net_up_to_rounding(tiny_images):
    """The embedder runs `inference_net` (BatchNorm folded into the convs, channels-last): the trained net's vectors
    to float rounding, on grey and colour input (bridged), and the fingerprint says so, so older vectors re-embed."""
    model = train_similarity(tiny_images, TINY)
    with torch.no_grad():  # non-trivial running statistics, so that folding has something to fold
        for bn in (m for m in model.module.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5), bn.running_var.uniform_(0.5, 2.0)
    folded = inference_net(model.module)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.module.modules())  # the trained net is untouched
    x = to_tensor_batch(tiny_images, 16, 1)
    with torch.inference_mode():
        np.testing.assert_allclose(folded(x.contiguous(memory_format=torch.channels_last)), model.module(x), atol=2e-6)
        kw = embedder_kwargs(model)
        np.testing.assert_allclose(
            kw["features"](x.expand(-1, 3, -1, -1)), model.features(x.expand(-1, 3, -1, -1)), atol=2e-6
        )
    assert Embedder(**kw).fingerprint().endswith(f"|float32|{INFERENCE_FORM}")


def test_colour_is_detected_from_the_data():
    grey = grey_set(3, 16)
    assert detect_channels(grey) == 1
    assert detect_channels([np.repeat(g[..., None], 3, 2) for g in grey]) == 1  # 3 equal channels: grey
    assert detect_channels(grey + colour_set(2, 16)) == 3


# --- known answer: near-copies find their source ----------------------------------------------


@pytest.mark.parametrize("kind", ["grey", "colour"])
def test_learned_similarity_finds_near_copy_sources_where_pixels_fail(kind):
    train = grey_set() if kind == "grey" else colour_set()
    copies, rows, _ = near_copy_set(train, 120, strengths=(0.5, 1.0, 1.5), seed=3)
    model = train_similarity(train, QUICK)
    assert model.channels == (1 if kind == "grey" else 3)
    learned = top1(train, copies, rows, Embedder(**embedder_kwargs(model)).embed)
    pixels = top1(train, copies, rows, pixel_embed)
    assert learned >= 0.95, (learned, pixels)
    assert learned > pixels, (learned, pixels)
    if kind == "colour":
        assert pixels < 0.6  # grey pixels cannot tell the chroma pairs apart: the model uses colour


# --- the aligned re-rank distance ---------------------------------------------------------------


def l2(generated, candidates, size=32):
    """The project's `l2` re-rank: grey, 32 px, mean squared difference."""
    g, c = to_tensor_batch([generated], size, 1), to_tensor_batch(candidates, size, 1)
    return ((c - g) ** 2).mean(dim=(1, 2, 3)).double().numpy()


@pytest.mark.parametrize("colour", [False, True])
def test_aligned_distance_finds_a_shifted_relit_copy_where_l2_fails(colour):
    rng = np.random.default_rng(0)
    big = np.clip(128 + 45 * texture(rng, 40), 0, 255)
    if colour:
        big = np.stack([big, 255 - big, np.full_like(big, 100.0)], 2)
    source = big[4:36, 4:36].astype(np.uint8)
    shifted = big[7:39, 5:37]  # 3 px down, 1 px right
    copy = np.clip((shifted - shifted.mean()) * 0.8 + shifted.mean() + 25, 0, 255).astype(np.uint8)
    flat = np.full_like(source, int(copy.mean()))  # the mean image: l2's favourite
    other = np.clip(128 + 45 * texture(rng, 32), 0, 255).astype(np.uint8)
    if colour:
        other = np.stack([other, 255 - other, np.full_like(other, 100)], 2)
    candidates = [flat, other, source]
    assert np.argmin(l2(copy, candidates)) != 2
    d = aligned_distance(size=32, max_shift=3)(copy, candidates)
    assert d.dtype == np.float64 and d.shape == (3,)
    assert np.argmin(d) == 2 and d[2] < 0.1 and d[0] > 1.5 and d[1] > 1.0
    assert aligned_distance()(copy, []).shape == (0,)
    # the fused distance keeps the answer (any L2-normalised embedding works; here: pixels)
    fused = fused_distance(lambda ims: pixel_embed(ims, 3 if colour else 1))(copy, candidates)
    assert np.argmin(fused) == 2


# --- near-copy benchmarks ------------------------------------------------------------------------


def test_near_copy_set_is_deterministic_and_keeps_shapes():
    grey, colour = grey_set(10, 28), colour_set(10, 24)
    for images in (grey, colour):
        a = near_copy_set(images, 12, strengths=(0.5, 1.0, 1.5), seed=7)
        b = near_copy_set(images, 12, strengths=(0.5, 1.0, 1.5), seed=7)
        c = near_copy_set(images, 12, strengths=(0.5, 1.0, 1.5), seed=8)
        assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
        np.testing.assert_array_equal(a[1], b[1])
        assert not all(np.array_equal(x, y) for x, y in zip(a[0], c[0]))
        assert list(a[2]) == [0.5, 1.0, 1.5] * 4
        for copy, row in zip(a[0], a[1]):
            assert copy.shape == images[row].shape and copy.dtype == np.uint8
            assert not np.array_equal(copy, images[row])
    assert len(set(near_copy_set(grey, 10, seed=1)[1].tolist())) == 10  # distinct sources when n <= len
    same = near_copy(grey[0], 0.0, np.random.default_rng(0))
    assert np.abs(same.astype(int) - grey[0]).max() <= 1  # strength 0: the image itself (up to resampling)


def test_photo_crops_are_distinct_textured_and_deterministic():
    photo = (np.random.default_rng(0).random((90, 120, 3)) * 255).astype(np.uint8)
    a = photo_crops(20, size=32, seed=0, photos=[photo])
    b = photo_crops(20, size=32, seed=0, photos=[photo])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert all(x.shape == (32, 32, 3) and x.dtype == np.uint8 for x in a)
    digests = {hashlib.sha256(x.tobytes()).hexdigest() for x in a}
    assert len(digests) == 20
    with pytest.raises(ValueError, match="crops"):
        photo_crops(20, size=32, seed=0, photos=[np.full((40, 40, 3), 7, np.uint8)], dihedral=False)
