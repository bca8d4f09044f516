import numpy as np
import pytest
import torch
import torchvision

from gmv_dagster.valuation.demo_generator import TrainParams, load_checkpoint, sample_cvae, save_checkpoint, train_cvae
from gmv_dagster.valuation.embedders import WeightsNotFoundError
from gmv_dagster.valuation.rerank import lpips_distance, make_pair_distance, rerank


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


def test_demo_generator_trains_samples_deterministically_and_roundtrips(tmp_path, known_answer):
    train, labels, *_ = known_answer
    params = TrainParams(epochs=2, batch_size=16, seed=1)
    model, classes = train_cvae(list(train), list(labels), params)
    a, la = sample_cvae(model, classes, 9, seed=5)
    save_checkpoint(model, classes, tmp_path / "c.pt")
    loaded, loaded_classes = load_checkpoint(tmp_path / "c.pt")
    b, lb = sample_cvae(loaded, loaded_classes, 9, seed=5)
    assert a.shape == (9, 28, 28) and a.dtype == np.uint8 and np.array_equal(a, b) and la == lb
    assert la[:3] == sorted(set(labels))
    again, _ = train_cvae(list(train), list(labels), params)
    assert np.array_equal(sample_cvae(again, classes, 9, seed=5)[0], a)
