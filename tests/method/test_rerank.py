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
