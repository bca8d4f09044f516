import io
import json
import struct
import urllib.request
import zlib

import numpy as np
import pytest
from PIL import Image

from gmv_dagster.sources import fashion_mnist as fashion_mnist_mod
from gmv_dagster.sources import manifests as manifests_mod
from gmv_dagster.sources.fashion_mnist import (
    fashion_mnist_manifest,
    locate_fashion_mnist,
)
from gmv_dagster.sources.images import (
    SourceError,
    decode_plain_png,
    load_images,
    load_npz,
    to_uint8_image,
)
from gmv_dagster.sources.manifests import folder_manifest, manifest_from_path


def test_folder_manifest_labels_attributes_and_modes(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "dog").mkdir()
    Image.fromarray(np.full((10, 12), 100, np.uint8)).save(tmp_path / "cat" / "a.png")
    Image.fromarray(np.full((20, 20, 3), 50, np.uint8)).convert("RGBA").save(tmp_path / "cat" / "b.png")
    Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).save(tmp_path / "dog" / "c.png")
    Image.fromarray(np.full((9, 9, 3), 200, np.uint8)).save(tmp_path / "dog" / "d.JPG")
    (tmp_path / "attributes.csv").write_text("file,hat\ncat/a.png,1\nc.png,0\n")
    df = manifest_from_path(str(tmp_path)).manifest
    assert df["id"].to_list() == ["cat/a.png", "cat/b.png", "dog/c.png", "dog/d.JPG"]
    assert df["label"].to_list() == ["cat", "cat", "dog", "dog"]
    assert json.loads(df["attributes"][0]) == {"hat": "1"} and json.loads(df["attributes"][2]) == {"hat": "0"}
    loaded = load_images(df["uri"].to_list())
    assert [im.dtype for im in loaded] == [np.uint8] * 4
    assert loaded[1].shape == (20, 20, 3) and loaded[2].shape == (8, 8) and loaded[2].max() > 200
    assert manifest_from_path(str(tmp_path)).manifest["content_hash"].equals(df["content_hash"])


def test_a_rescan_decodes_only_bytes_it_has_not_seen_and_keeps_the_file_order(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for i in range(40):  # more files than scan threads, in nested folders, so order is at stake
        folder = tmp_path / f"c{i % 3}" / f"sub{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (6 + i % 5, 7), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    decoded = []
    check = manifests_mod.image_problem
    monkeypatch.setattr(manifests_mod, "image_problem", lambda data: decoded.append(1) or check(data))
    seen = []
    monkeypatch.setattr(manifests_mod, "SCAN_CHUNK", 16)
    first = folder_manifest(tmp_path, progress=lambda n, total: seen.append((n, total)))
    assert len(decoded) == 40 and first.known == 0 and seen == [(16, 40), (16, 40), (8, 40)]
    assert first.manifest["id"].to_list() == sorted(first.manifest["id"].to_list())

    changed = tmp_path / "c0" / "sub0" / "00.png"
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(changed)
    decoded.clear()
    again = folder_manifest(tmp_path, known_good=frozenset(first.manifest["content_hash"]))
    assert len(decoded) == 1 and again.known == 39  # only the changed file is decoded
    assert again.manifest.drop("content_hash").equals(first.manifest.drop("content_hash"))
    assert (again.manifest["content_hash"] != first.manifest["content_hash"]).to_list() == [True] + [False] * 39

    changed.write_bytes(b"\x89PNG not really")  # a known-good list never vouches for bytes it does not hold
    with pytest.raises(SourceError, match="00.png: not a readable image"):
        folder_manifest(tmp_path, known_good=frozenset(first.manifest["content_hash"]))


def test_attributes_row_naming_an_unknown_file_is_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "attributes.csv").write_text("file,hat\nz.png,1\n")
    with pytest.raises(SourceError, match=r"attributes.csv, line 2: 'z.png'"):
        manifest_from_path(str(tmp_path))


def test_npz_source(tmp_path):
    np.savez(tmp_path / "gen.npz", images=np.zeros((3, 5, 5), np.uint8), labels=np.array([1, 2, 3]))
    df = manifest_from_path(str(tmp_path / "gen.npz")).manifest
    assert df["id"].to_list() == ["gen:000000", "gen:000001", "gen:000002"] and df["label"].to_list() == ["1", "2", "3"]
    assert load_images(df["uri"].to_list())[0].shape == (5, 5)


@pytest.mark.parametrize(
    "save", [np.savez, np.savez_compressed], ids=["stored: memory-mapped", "compressed: read whole"]
)
def test_npz_arrays_read_back_exactly_whether_stored_or_compressed(tmp_path, save):
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
    fortran = np.asfortranarray(rng.integers(0, 256, (4, 3, 9), dtype=np.uint8))
    save(tmp_path / "colour.npz", images=colour, labels=np.arange(6) * 3)
    save(tmp_path / "fortran.npz", images=fortran)
    images, labels = load_npz(str(tmp_path / "colour.npz"))
    assert isinstance(images, np.memmap) == (save is np.savez)
    assert images.dtype == np.uint8 and np.array_equal(images, colour) and labels.tolist() == [0, 3, 6, 9, 12, 15]
    assert np.array_equal(load_npz(str(tmp_path / "fortran.npz"))[0], fortran)
    first = load_images([f"{tmp_path / 'colour.npz'}#4"])[0]
    assert np.array_equal(first, colour[4]) and not isinstance(first, np.memmap) and first.flags.writeable


def test_an_npz_rewritten_under_the_same_path_is_read_anew(tmp_path):
    path = tmp_path / "gen.npz"
    np.savez(path, images=np.zeros((3, 5, 5), np.uint8))
    assert load_images([f"{path}#2"])[0].max() == 0
    np.savez(path, images=np.full((4, 6, 6), 7, np.uint8))  # in place: same inode, other size
    assert load_npz(str(path))[0].shape == (4, 6, 6) and load_images([f"{path}#3"])[0].max() == 7


def test_bad_sources_name_the_path(tmp_path):
    with pytest.raises(SourceError, match="neither a folder"):
        manifest_from_path(str(tmp_path / "nothing"))
    with pytest.raises(SourceError, match="no PNG or JPEG"):
        manifest_from_path(str(tmp_path))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    df = manifest_from_path(str(tmp_path)).manifest
    (tmp_path / "x.png").write_bytes(b"not a png")  # replaced after its manifest was made
    with pytest.raises(SourceError, match="x.png"):
        load_images(df["uri"].to_list())


def _png(image: Image.Image, **save) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **save)
    return out.getvalue()


def _pil_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return to_uint8_image(img)


def _chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) if crc is None else crc)
    )


def _with_chunk(data: bytes, kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    """`data` with a chunk inserted after IHDR (33 bytes in)."""
    return data[:33] + _chunk(kind, body, crc) + data[33:]


# Adam7's seven passes: (first column, first row, column step, row step)
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _handmade_png(
    pixels: np.ndarray, interlace: bool = False, size: tuple[int, int] | None = None, filtering: int = 0
) -> bytes:
    """An 8-bit grey or RGB PNG written here, byte by byte (PIL writes no interlaced files): rows unfiltered,
    in Adam7's passes where `interlace`; `size` and `filtering` override the header's."""
    h, w = pixels.shape[:2]
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = b"".join(b"\x00" + row.tobytes() for x0, y0, dx, dy in passes for row in pixels[y0::dy, x0::dx] if row.size)
    width, height = size or (w, h)
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if pixels.ndim == 3 else 0, 0, filtering, int(interlace))
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def test_pngs_read_as_pil_reads_them_whichever_decoder_reads_them(tmp_path):
    """Plain 8-bit grey / RGB PNGs (alpha or not, pixels in one IDAT chunk or several) go through decode_plain_png;
    palette, 16-bit, 1-bit, interlaced files, files with other chunks (transparency, gamma, text) and JPEG through
    Image.open. Same pixels either way."""
    rng = np.random.default_rng(4)
    grey, rgb = rng.integers(0, 256, (29, 31), np.uint8), rng.integers(0, 256, (37, 53, 3), np.uint8)
    big = rng.integers(0, 256, (300, 310, 3), np.uint8)  # incompressible: PIL splits its pixels over IDAT chunks
    alpha = rng.integers(0, 256, (37, 53, 1), np.uint8)
    plain = {
        "grey": _png(Image.fromarray(grey)),
        "rgb": _png(Image.fromarray(rgb)),
        "rgba": _png(Image.fromarray(np.concatenate([rgb, alpha], 2))),
        "grey+alpha": _png(Image.fromarray(grey).convert("LA")),
        "rgb, several IDAT": _png(Image.fromarray(big)),
        "grey, made here": _handmade_png(grey),
    }
    other = {
        "palette": _png(Image.fromarray(rgb).convert("P")),
        "16-bit": _png(Image.fromarray(grey.astype(np.uint16) * 257)),
        "1-bit": _png(Image.fromarray(grey).convert("1")),
        "grey, interlaced": _handmade_png(grey, interlace=True),
        "rgb, interlaced": _handmade_png(rgb, interlace=True),
        "grey, transparent 7": _png(Image.fromarray(grey), transparency=7),
        "rgb, transparent colour": _png(Image.fromarray(rgb), transparency=(1, 2, 3)),
        "rgb, gamma chunk": _with_chunk(_png(Image.fromarray(rgb)), b"gAMA", struct.pack(">I", 30000)),
        "rgb, text chunk": _with_chunk(_png(Image.fromarray(rgb)), b"tEXt", b"prompt\x00a shirt"),
    }
    assert plain["rgb, several IDAT"].count(b"IDAT") > 1
    for name, data in {**plain, **other}.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(data)
        assert (decode_plain_png(data) is not None) == (name in plain), name
        pixels, expected = load_images([str(path)])[0], _pil_pixels(data)
        assert pixels.dtype == np.uint8 and pixels.shape == expected.shape and np.array_equal(pixels, expected), name
    for name in ("grey, made here", "grey, interlaced", "rgb, interlaced"):  # and what was written comes back
        assert np.array_equal(load_images([str(tmp_path / f"{name}.png")])[0], rgb if "rgb" in name else grey), name
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=90)
    assert np.array_equal(
        load_images([str(tmp_path / "photo.jpg")])[0], _pil_pixels((tmp_path / "photo.jpg").read_bytes())
    )


def test_a_broken_png_is_left_to_pil_which_names_the_file(tmp_path):
    """Truncated, a flipped byte in the pixels (CRC failing, or recomputed so that only zlib notices), a text chunk
    whose CRC fails, no pixels, a size of 0, an unknown filter method, pixels interrupted by another chunk:
    decode_plain_png declines each, and reading it raises as Image.open does, naming the file."""
    pixels = np.random.default_rng(5).integers(0, 256, (40, 40, 3), np.uint8)
    data = _png(Image.fromarray(pixels))
    at = data.index(b"IDAT")
    length = struct.unpack_from(">I", data, at - 4)[0]
    flipped = bytearray(data[at + 4 : at + 4 + length])
    flipped[length // 2] ^= 0x55
    crc_fixed = (
        data[: at + 4]
        + bytes(flipped)
        + struct.pack(">I", zlib.crc32(b"IDAT" + bytes(flipped)))
        + data[at + 8 + length :]
    )
    made = _handmade_png(pixels)
    idat = made.index(b"IDAT") - 4
    body = made[idat + 8 : len(made) - 24]  # the one IDAT's body: its CRC and IEND are the last 24 bytes
    interrupted = (
        made[:idat] + _chunk(b"IDAT", body[:50]) + _chunk(b"tEXt", b"a\x00b") + _chunk(b"IDAT", body[50:]) + made[-12:]
    )
    broken = {
        "truncated": data[: len(data) // 2],
        "pixels, crc fails": data[: at + 4] + bytes(flipped) + data[at + 4 + length :],
        "pixels, crc recomputed": crc_fixed,
        "text chunk, crc fails": _with_chunk(data, b"tEXt", b"a\x00b", crc=0),
        "no pixels": made[:idat] + made[-12:],
        "size 0": _handmade_png(pixels[:0], size=(0, 0)),
        "filter method 1": _handmade_png(pixels, filtering=1),
        "pixels interrupted": interrupted,
    }
    for name, bad in broken.items():
        assert decode_plain_png(bad) is None, name
        path = tmp_path / f"{name}.png"
        path.write_bytes(bad)
        with pytest.raises(SourceError, match=f"cannot read image .*{name}.png"):
            load_images([str(path)])
        with pytest.raises(OSError):  # PIL's decode errors (UnidentifiedImageError is one)
            _pil_pixels(bad)


def test_fashion_mnist_subset_is_seeded(fashion_mnist_dir):
    a = fashion_mnist_manifest(fashion_mnist_dir, "train", 50, seed=3)
    assert a.equals(fashion_mnist_manifest(fashion_mnist_dir, "train", 50, seed=3))
    assert not a.equals(fashion_mnist_manifest(fashion_mnist_dir, "train", 50, seed=4))
    assert load_images(a["uri"].head(2).to_list())[0].shape == (28, 28)


def test_missing_fashion_mnist_names_all_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist_mod, "DEBIAN_FASHION_MNIST", tmp_path / "debian")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # no internet here either way; fail fast
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    # urlopen builds its global opener, proxies included, on first use and keeps it: restore it after the test,
    # or every later urlopen in this process (the dagster dev fixtures' GraphQL calls) goes to that dead proxy
    monkeypatch.setattr(urllib.request, "_opener", None)
    with pytest.raises(SourceError) as err:
        locate_fashion_mnist(str(tmp_path / "mine"), tmp_path / "dl")
    text = str(err.value)
    assert "GMV_FASHION_MNIST_DIR" in text and "dataset-fashion-mnist" in text and "torchvision download" in text


def test_a_link_out_of_the_data_root_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(outside / "secret.png")
    root = tmp_path / "train" / "cls"
    root.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "ok.png")
    (root / "sneaky.png").symlink_to(outside / "secret.png")
    with pytest.raises(SourceError, match=r"sneaky.png links to .*secret.png, outside the data root"):
        folder_manifest(tmp_path / "train")
    (root / "sneaky.png").unlink()
    (root / "inside.png").symlink_to(root / "ok.png")  # a link that stays inside is fine
    assert folder_manifest(tmp_path / "train").manifest.height == 2


def test_folder_listing_orders_by_path_parts_and_follows_only_links_to_files(tmp_path):
    """folder_files, which the manifests and gmv run's change digest list with: ids sorted by their path parts ("a/"
    before "a-b/", though "-" sorts before "/" as text), links to files followed (their uri the target), links to
    folders and broken links left out, other files reported as skipped."""
    src = tmp_path / "src"
    for folder in ("a/deep", "a-b"):
        (src / folder).mkdir(parents=True)
    for i, name in enumerate(["a/x.png", "a-b/x.png", "a/deep/y.PNG", "a.png"]):
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(src / name)
    (src / "link.png").symlink_to(src / "a" / "x.png")
    (src / "dirlink").symlink_to(src / "a")
    (src / "broken.png").symlink_to(src / "nothing.png")
    (src / "notes.txt").write_text("not an image")
    scan = folder_manifest(src, on_bad_image="skip")
    real = src.resolve()
    assert scan.manifest.select("id", "uri", "label").rows() == [
        ("a/deep/y.PNG", str(real / "a/deep/y.PNG"), "a"),
        ("a/x.png", str(real / "a/x.png"), "a"),
        ("a-b/x.png", str(real / "a-b/x.png"), "a-b"),
        ("a.png", str(real / "a.png"), None),
        ("link.png", str(real / "a/x.png"), None),
    ]
    assert scan.skipped.rows() == [(str(src / "notes.txt"), "not a PNG or JPEG file (only .png, .jpg, .jpeg are read)")]
