"""Matching through a left-right flip: a generated image is matched as a mirror image when that is much nearer."""

import numpy as np
import pytest

from gmv_dagster.method.core import Reranking, match, mirror
from gmv_dagster.method.matching import IndexShard, MatchParams
from gmv_dagster.method.rerank import l2_distance


def _pictures(n: int, seed: int) -> np.ndarray:
    """Images with a left-right asymmetry that a pixel embedding sees: a bright bar at one of 4 columns."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(n, 12, 12), dtype=np.uint8)
    for i, col in enumerate(rng.integers(0, 4, size=n)):
        images[i, 2:10, col : col + 3] = 255
    return images


def _embed(images) -> np.ndarray:
    flat = np.stack([np.asarray(x, np.float32).ravel() for x in images])
    return flat / np.linalg.norm(flat, axis=1, keepdims=True)


def _match(train, generated, flips=True, ratio=0.6, reranking=None):
    params = MatchParams(k=3, candidates=10, index_mode="exact", flip_ratio=ratio)
    timings: dict = {}
    mirrored = _embed([mirror(g) for g in generated]) if flips else None
    idx, dist = match(
        _embed(train), _embed(generated), params, [IndexShard(0, len(train))], "cpu", reranking, timings, mirrored
    )
    return idx, dist, timings


def test_mirror_images_find_their_source_and_upright_copies_stay_upright():
    train = _pictures(60, 0)
    generated = [mirror(train[i]) for i in (4, 17, 33)] + [train[i].copy() for i in (8, 9)]
    plain, _, timings = _match(train, generated, flips=False)
    assert plain[:3, 0].tolist() != [4, 17, 33] and "mirror_images" not in timings
    found, dist, timings = _match(train, generated)
    assert found[:, 0].tolist() == [4, 17, 33, 8, 9] and timings["mirror_images"] == 3
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-6)  # each is its source, the mirror images flipped back
    # the mirror images' other candidates are the mirrored search's too, in its order
    assert found[:3].tolist() == _match(train, [mirror(g) for g in generated[:3]], flips=False)[0].tolist()


def test_a_mirror_image_is_taken_only_when_nearer_than_the_ratio_says():
    train = np.eye(4, dtype=np.float32)[:3]  # a, b, c
    upright = np.array([[0.7, 0.0, 0.0, np.sqrt(1 - 0.49)]], np.float32)  # 0.3 from a
    mirrored = np.array([[0.0, 0.75, 0.0, np.sqrt(1 - 0.5625)]], np.float32)  # 0.25 from b: 0.83 x as far

    def top1(ratio):
        params = MatchParams(k=1, candidates=3, index_mode="exact", flip_ratio=ratio)
        timings: dict = {}
        idx, dist = match(train, upright, params, [IndexShard(0, 3)], "cpu", None, timings, mirrored)
        return int(idx[0, 0]), round(float(dist[0, 0]), 6), timings["mirror_images"]

    assert top1(0.6) == (0, 0.3, 0)  # 0.25 is not under 0.6 x 0.3
    assert top1(0.85) == (1, 0.25, 1) and top1(1.0) == (1, 0.25, 1)
    with pytest.raises(ValueError, match=r"flip_ratio must be in \(0, 1\]"):
        MatchParams(flip_ratio=0.0)


def test_the_rerank_compares_a_mirror_image_in_the_orientation_it_was_matched_in():
    train = _pictures(60, 0)
    generated = [mirror(train[i]) for i in (4, 17)] + [train[21].copy()]
    reranking = Reranking(l2_distance(12), generated, lambda rows: [train[i] for i in rows])
    found, dist, timings = _match(train, generated, reranking=reranking)
    assert found[:, 0].tolist() == [4, 17, 21] and timings["mirror_images"] == 2
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-9)
