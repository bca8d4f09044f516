from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from gmv_dagster.common.tensors import WeightsNotFoundError, to_tensor_batch
from gmv_dagster.method.rerank import lpips_distance, make_pair_distance, rerank

LPIPS_LAYERS = (1, 4, 7, 9, 11)  # AlexNet features: the ReLU after each conv, where LPIPS-Alex reads its five layers


def lpips_by_hand(alex: torch.nn.Module, heads: dict, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS v0.1 (Zhang et al. 2018) written out: scale the [-1, 1] input, per layer unit-normalise the features over
    channels, weight their squared difference by that layer's linear head, average over space, sum over layers."""
    shift = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
    scale = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]
    x, y = ((to_tensor_batch([img], 64, 3) * 2 - 1 - shift) / scale for img in (a, b))
    total = 0.0
    with torch.inference_mode():
        for i, layer in enumerate(alex.features[: LPIPS_LAYERS[-1] + 1]):
            x, y = layer(x), layer(y)
            if i in LPIPS_LAYERS:
                nx = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                ny = y / (y.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                w = heads[f"lin{LPIPS_LAYERS.index(i)}.model.1.weight"].reshape(1, -1, 1, 1)
                total += float(((nx - ny) ** 2 * w).sum(1).mean())
    return total


def test_lpips_is_zero_on_a_copy_grows_with_the_change_and_is_lpips_of_the_given_backbone(tmp_path, known_answer):
    """With a seeded random AlexNet as the backbone file (no download here) and the linear heads the lpips package
    ships: an exact copy is at distance 0, noise of growing strength is ever farther, every distance is LPIPS written
    out by hand with that file's trunk and those heads, and the re-rank puts the copy first."""
    import lpips

    train, *_ = known_answer
    torch.manual_seed(0)
    alex = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path / "alexnet.pth"
    torch.save(alex.state_dict(), path)
    heads = torch.load(
        Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu", weights_only=True
    )
    distance = lpips_distance(str(path))

    source = train[3]
    noise = np.random.default_rng(0).normal(0, 1, source.shape)
    noisy = [np.clip(source + sigma * noise, 0, 255).astype(np.uint8) for sigma in (4, 16, 64)]
    candidates = [source, *noisy, train[20]]
    d = distance(source, candidates)
    assert d[0] == pytest.approx(0.0, abs=1e-7)
    assert 0 < d[1] < d[2] < d[3], d
    np.testing.assert_allclose(d, [lpips_by_hand(alex, heads, source, c) for c in candidates], rtol=1e-4, atol=1e-7)

    idx, dist = rerank([source], np.array([[7, 3, 20]]), lambda rows: [train[i] for i in rows], distance)
    assert idx[0].tolist()[0] == 3 and dist[0, 0] == pytest.approx(0.0, abs=1e-7) and dist[0, 1] > 0


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

    def fetch(rows):
        return [candidates[i] for i in rows]

    l2_idx, _ = rerank([copy], np.array([[0, 1, 2]]), fetch, make_pair_distance("l2", None, "cpu"))
    assert l2_idx[0, 0] != 1
    idx, dist = rerank([copy], np.array([[0, 1, 2]]), fetch, make_pair_distance("aligned", None, "cpu"))
    assert idx[0, 0] == 1 and dist[0, 0] < dist[0, 1]
