"""The compiled enlargement against PIL's own Image.resize: the same bits, so the embedders' input and NIQE's working
image are what PIL would give."""

import numpy as np
import pytest
from PIL import Image

from gmv_dagster.common.resample import enlarge, resize
from gmv_dagster.common.tensors import to_tensor_batch


@pytest.mark.parametrize("resample", [Image.BILINEAR, Image.BICUBIC])
def test_enlargement_is_bit_identical_to_pil(resample: int) -> None:
    rng = np.random.default_rng(7)
    for trial in range(150):  # grey and colour; noise, hard edges (bicubic overshoot clipped at 0 and 255), flat
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        size = (w + int(rng.integers(0, 170)), h + int(rng.integers(0, 170)))  # (width, height); one axis may stay
        shape = (h, w) if trial % 2 else (h, w, 3)
        img = [rng.integers(0, 256, shape), rng.integers(0, 2, shape) * 255, np.full(shape, trial)][trial % 3]
        img = img.astype(np.uint8)
        ref = np.asarray(Image.fromarray(img).resize(size, resample))
        got = enlarge(img, *size, resample)
        assert got.dtype == np.uint8 and got.shape == ref.shape and np.array_equal(got, ref), (shape, size)


def test_shrinking_is_refused_by_enlarge_and_left_to_pil_by_resize() -> None:
    img = np.random.default_rng(1).integers(0, 256, (35, 70), dtype=np.uint8)
    with pytest.raises(ValueError, match="shrinks"):
        enlarge(img, 190, 12, Image.BICUBIC)
    # one axis up, the other down: Pillow resamples the columns first here, so rounding differs from rows first
    assert np.array_equal(resize(img, 190, 12, Image.BICUBIC),
                          np.asarray(Image.fromarray(img).resize((190, 12), Image.BICUBIC)))


@pytest.mark.parametrize("shape, channels", [((28, 28), 1), ((28, 28, 3), 3), ((28, 28, 3), 1), ((40, 50), 3),
                                             ((20, 30, 4), 3)])
def test_the_embedders_input_is_pil_convert_and_resize(shape: tuple, channels: int) -> None:
    """to_tensor_batch: PIL's pixels whatever the path (grey, colour, converted, shrunk, RGBA)."""
    images = list(np.random.default_rng(2).integers(0, 256, (3, *shape), dtype=np.uint8))
    mode = "L" if channels == 1 else "RGB"
    ref = np.stack([np.asarray(Image.fromarray(i).convert(mode).resize((32, 32), Image.BILINEAR), dtype=np.float32)
                    for i in images]) / 255.0
    got = to_tensor_batch(images, 32, channels).numpy()
    assert np.array_equal(got, ref[:, None] if channels == 1 else ref.transpose(0, 3, 1, 2))
