"""Bad inputs: each is refused with the file (or row) and what to do, or left out under on_bad_image: skip."""

import io

import numpy as np
import pytest
from PIL import Image

from gmv_dagster.resources import build_resources
from gmv_dagster.sources.images import SourceError, load_images
from gmv_dagster.sources.manifests import manifest_from_path


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


GOOD = {  # every mode the loaders take, and very different sizes
    "good/l.png": Image.fromarray(np.full((8, 8), 200, np.uint8)),
    "good/la.png": Image.fromarray(np.full((12, 9, 2), 120, np.uint8), "LA"),
    "good/rgb.png": Image.fromarray(np.full((300, 40, 3), 30, np.uint8)),
    "good/rgba.png": Image.fromarray(np.full((5, 700, 4), 90, np.uint8)),
    "good/p.png": Image.fromarray(np.full((16, 16, 3), 60, np.uint8)).convert("P"),
    "good/i16.png": Image.fromarray(np.full((10, 10), 40000, np.uint16)),
    "good/photo.jpg": Image.fromarray(np.full((20, 30, 3), 128, np.uint8)),
}


def salted_folder(root):
    """A folder with good images of every mode and one of each kind of bad file."""
    for name, img in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / name)
    bad = root / "bad"
    bad.mkdir()
    whole = png_bytes(Image.fromarray(np.arange(4096, dtype=np.uint8).reshape(64, 64)))
    (bad / "a_truncated.png").write_bytes(whole[: len(whole) // 2])
    (bad / "b_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (bad / "c_empty.jpg").write_bytes(b"")
    (bad / "d_text.png").write_text("this is not an image")
    (bad / "notes.txt").write_text("a file that is not an image at all")
    return root


def test_the_first_bad_file_is_named_with_what_to_do(tmp_path):
    folder = salted_folder(tmp_path / "train")
    with pytest.raises(SourceError) as err:
        manifest_from_path(str(folder))
    message = str(err.value)
    assert "bad/a_truncated.png: not a readable image" in message and "(and 3 more)" in message
    assert "Remove or replace the file" in message and "GMV_ON_BAD_IMAGE=skip" in message


def test_skip_values_the_good_images_and_lists_every_bad_file(tmp_path):
    folder = salted_folder(tmp_path / "train")
    scan = manifest_from_path(str(folder), "skip")
    assert sorted(scan.manifest["id"]) == sorted(GOOD)
    reasons = {p.split("/")[-1]: r for p, r in scan.skipped.iter_rows()}
    assert set(reasons) == {"a_truncated.png", "b_corrupt.png", "c_empty.jpg", "d_text.png", "notes.txt"}
    assert reasons["c_empty.jpg"] == "empty file (0 bytes)"
    assert reasons["notes.txt"].startswith("not a PNG or JPEG file")
    assert all(
        reasons[n].startswith("not a readable image") for n in ("a_truncated.png", "b_corrupt.png", "d_text.png")
    )
    images = load_images(scan.manifest["uri"].to_list())  # every mode decodes to uint8 grey or RGB
    assert all(img.dtype == np.uint8 and img.ndim in (2, 3) and img.size for img in images)


def test_a_folder_of_only_bad_images_is_refused_even_when_skipping(tmp_path):
    (tmp_path / "x.png").write_bytes(b"")
    with pytest.raises(SourceError, match="no readable image under .*all 1 are bad"):
        manifest_from_path(str(tmp_path), "skip")


def test_non_finite_pixels_in_an_npz_are_bad_images(tmp_path):
    images = np.random.default_rng(0).random((5, 8, 8)).astype(np.float32)
    images[3, 2, 2] = np.nan
    np.savez(tmp_path / "gen.npz", images=images)
    with pytest.raises(SourceError, match=r"gen.npz#3: pixels are NaN or Inf"):
        manifest_from_path(str(tmp_path / "gen.npz"))
    scan = manifest_from_path(str(tmp_path / "gen.npz"), "skip")
    assert scan.manifest["id"].to_list() == [f"gen:{i:06d}" for i in (0, 1, 2, 4)]


@pytest.mark.parametrize(
    "csv_text, expected",
    [
        ("file,style\nl.png,a\nl.png,b\n", r"line 3: a second row for 'l.png'"),
        ("file,style\nl.png\n", r"line 2: wrong number of fields"),
        ("file\nl.png\n", r"needs a header with a file-name column and at least one attribute"),
        ("file,style\nmissing.png,a\n", r"line 2: 'missing.png' is not an image"),
    ],
)
def test_malformed_attributes_csv_names_the_line(tmp_path, csv_text, expected):
    GOOD["good/l.png"].save(tmp_path / "l.png")
    (tmp_path / "attributes.csv").write_text(csv_text)
    with pytest.raises(SourceError, match=expected):
        manifest_from_path(str(tmp_path))


def test_attributes_of_a_skipped_image_are_not_an_error(tmp_path):
    GOOD["good/l.png"].save(tmp_path / "l.png")
    (tmp_path / "broken.png").write_bytes(b"")
    (tmp_path / "attributes.csv").write_text("file,style\nl.png,a\nbroken.png,b\n")
    scan = manifest_from_path(str(tmp_path), "skip")
    assert scan.manifest["attributes"].to_list() == ['{"style": "a"}']


def test_an_unknown_policy_stops_the_definitions_with_the_variable_named(tmp_path):
    with pytest.raises(
        ValueError, match=r"on_bad_image must be one of \('fail', 'skip'\) \(GMV_ON_BAD_IMAGE\), got 'ignore'"
    ):
        build_resources(tmp_path, {"GMV_ON_BAD_IMAGE": "ignore"})


def test_k_above_the_number_of_training_images_is_refused():
    from gmv_dagster.method.matching import IndexShard, MatchParams, search_shards

    train = np.eye(4, dtype=np.float32)
    with pytest.raises(ValueError, match=r"k = 10 nearest training images asked for, but there are only 4: set k"):
        search_shards(train, train, MatchParams(k=10), [IndexShard(0, 4)])
    assert search_shards(train, train, MatchParams(k=4), [IndexShard(0, 2), IndexShard(2, 4)])[0].shape == (4, 4)
