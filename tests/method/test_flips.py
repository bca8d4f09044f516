"""Matching through a left-right flip: each training image at the nearer of a generated image's two orientations."""

import numpy as np

from gmv_dagster.method.core import Reranking, either_orientation, match, mirror
from gmv_dagster.method.matching import IndexShard, MatchParams, merge_candidates
from gmv_dagster.method.rerank import l2_distance


def test_a_row_in_both_orientations_lists_counts_once_at_its_nearer_distance():
    upright = (np.array([[3, 5, 9, -1]]), np.array([[0.1, 0.4, 0.5, np.inf]]))
    flipped = (np.array([[5, 2, 3, -1]]), np.array([[0.2, 0.3, 0.6, np.inf]]))
    rows, dist = merge_candidates([upright, flipped], 5)
    assert rows.tolist() == [[3, 5, 2, 9, -1]]
    np.testing.assert_array_equal(dist, [[0.1, 0.2, 0.3, 0.5, np.inf]])


def _pictures(n: int, seed: int) -> np.ndarray:
    """Images with a left-right asymmetry that a pixel embedding sees: a bright block on one side."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(n, 12, 12), dtype=np.uint8)
    for i, col in enumerate(rng.integers(0, 4, size=n)):
        images[i, 2:10, col : col + 3] = 255
    return images


def _embed(images) -> np.ndarray:
    flat = np.stack([np.asarray(x, np.float32).ravel() for x in images])
    return flat / np.linalg.norm(flat, axis=1, keepdims=True)


def test_mirror_images_find_their_source_only_with_the_mirrored_queries():
    train = _pictures(60, 0)
    generated = [mirror(train[i]) for i in (4, 17, 33)]
    params, shards = MatchParams(k=3, candidates=10, index_mode="exact"), [IndexShard(0, len(train))]
    plain, _ = match(_embed(train), _embed(generated), params, shards)
    assert plain[:, 0].tolist() != [4, 17, 33]
    either, dist = match(_embed(train), _embed(generated), params, shards, mirrored=_embed(map(mirror, generated)))
    assert either[:, 0].tolist() == [4, 17, 33]
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-6)  # float32 embeddings: the mirror is the source exactly
    assert all(len(set(row[row >= 0])) == (row >= 0).sum() for row in either)  # no training row twice

    # The re-rank sees through the flip too: its distance is the nearer orientation's.
    reranking = Reranking(l2_distance(12), generated, lambda rows: [train[i] for i in rows])
    reranked, rdist = match(
        _embed(train), _embed(generated), params, shards, reranking=reranking, mirrored=_embed(map(mirror, generated))
    )
    assert reranked[:, 0].tolist() == [4, 17, 33]
    np.testing.assert_allclose(rdist[:, 0], 0.0, atol=1e-9)


def test_either_orientation_is_the_smaller_of_the_two_distances():
    a, b = _pictures(2, 1)
    distance = either_orientation(l2_distance(12))
    assert distance(mirror(a), [a, b])[0] == 0.0
    assert distance(mirror(a), [b])[0] == min(l2_distance(12)(mirror(a), [b])[0], l2_distance(12)(a, [b])[0])
