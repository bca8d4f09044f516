import numpy as np
import pytest
import torch
import torchvision

from gmv_dagster.common.tensors import WeightsNotFoundError
from gmv_dagster.method.rerank import lpips_distance, make_pair_distance, rerank


def test_lpips_rerank_with_a_local_backbone_ranks_the_copy_first(tmp_path, known_answer):
    train, *_ = known_answer
    torch.manual_seed(0)
    path = tmp_path / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    distance = lpips_distance(str(path))
    idx, dist = rerank([train[3]], np.array([[7, 3, 20]]), lambda rows: [train[i] for i in rows], distance)
    assert idx[0, 0] == 3 and dist[0, 0] == pytest.approx(0.0, abs=1e-6)


def test_lpips_without_backbone_file_says_which_file():
    with pytest.raises(WeightsNotFoundError, match="alexnet-owt-7be5be79.pth"):
        make_pair_distance("lpips", None, "cpu")
    with pytest.raises(ValueError, match="rerank must be one of"):
        make_pair_distance("dreamsim", None, "cpu")


def test_aligned_rerank_ranks_a_shifted_copy_first_where_l2_does_not():
    """A copy shifted by 2 px: plain l2 on pixels prefers a smooth competitor; the aligned re-rank (distance
    minimised over shifts of up to 3 px) finds the source. Offline: no weights file."""
    rng = np.random.default_rng(0)
    source = (rng.random((32, 32)) > 0.5).astype(np.uint8) * 255  # texture: a shift moves every edge
    copy = np.roll(source, 2, axis=1)
    competitor = np.full((32, 32), 128, np.uint8)
    candidates = [competitor, source, 255 - source]
    fetch = lambda rows: [candidates[i] for i in rows]
    l2_idx, _ = rerank([copy], np.array([[0, 1, 2]]), fetch, make_pair_distance("l2", None, "cpu"))
    assert l2_idx[0, 0] != 1
    idx, dist = rerank([copy], np.array([[0, 1, 2]]), fetch, make_pair_distance("aligned", None, "cpu"))
    assert idx[0, 0] == 1 and dist[0, 0] < dist[0, 1]
