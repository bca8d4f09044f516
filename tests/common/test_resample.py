"""The compiled enlargement against PIL's own Image.resize: the same bits, so NIQE's working image is what PIL would
give."""

import numpy as np
import pytest
from PIL import Image

from gmv_dagster.common.resample import enlarge, resize


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
    # one axis up, the other down: Pillow 13 resamples the columns first here, so rounding differs from rows first
    assert np.array_equal(
        resize(img, 190, 12, Image.BICUBIC), np.asarray(Image.fromarray(img).resize((190, 12), Image.BICUBIC))
    )
    same = enlarge(img, 70, 35, Image.BICUBIC)
    assert np.array_equal(same, img) and not np.shares_memory(same, img)  # a new array, as PIL's copy


def test_images_with_alpha_go_through_pil_which_premultiplies_it() -> None:
    rgba = np.random.default_rng(4).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    assert np.array_equal(
        resize(rgba, 30, 20, Image.BICUBIC), np.asarray(Image.fromarray(rgba).resize((30, 20), Image.BICUBIC))
    )
