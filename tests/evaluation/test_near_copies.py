"""The generated images the attribution benchmark builds: transformed copies and blends of training images."""

import numpy as np
import pytest

from gmv_dagster.evaluation.near_copies import blend, transformed_copy


def _picture(colour: bool) -> np.ndarray:
    y, x = np.mgrid[0:48, 0:48]
    grey = (128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)).astype(np.uint8)
    return np.stack([grey, 255 - grey, grey // 2], axis=2) if colour else grey


@pytest.mark.parametrize("colour", [False, True])
def test_a_transformed_copy_keeps_shape_and_differs_and_is_seeded(colour):
    image = _picture(colour)
    one = transformed_copy(image, np.random.default_rng(5))
    assert one.shape == image.shape and one.dtype == np.uint8
    assert np.abs(one.astype(int) - image).mean() > 2  # rotated, rescaled and compressed: not the image
    np.testing.assert_array_equal(one, transformed_copy(image, np.random.default_rng(5)))
    assert not np.array_equal(one, transformed_copy(image, np.random.default_rng(6)))


def test_a_transformed_copy_with_no_change_is_only_its_jpeg():
    image = _picture(False)
    same = transformed_copy(image, np.random.default_rng(0), rotation=(0, 0), rescale=(0, 0), jpeg_quality=(95, 95))
    assert np.abs(same.astype(int) - image).max() <= 8  # JPEG 95 alone


def test_a_blend_is_the_weighted_mean_of_its_two_sources_rounded():
    a = np.full((4, 4), 200, np.uint8)
    b = np.full((4, 4), 100, np.uint8)
    assert blend(a, b, 0.6).tolist() == np.full((4, 4), 160).tolist()
    assert blend(a, b, 1.0).tolist() == a.tolist() and blend(a, b, 0.0).tolist() == b.tolist()
    mixed = blend(a, np.zeros((8, 8, 3), np.uint8), 0.5)  # grey with colour, another size: colour at a's size
    assert mixed.shape == (4, 4, 3) and (mixed == 100).all()
    with pytest.raises(ValueError, match=r"share must be in \[0, 1\]"):
        blend(a, b, 1.5)
