"""The pictures in asset metadata: what the galleries pick and write under each image, and how `picture` attaches
them (a short link to a file under the compute logs, which the UI shows in place; base64 where there is none)."""

import base64
import io
import re

import dagster as dg
import numpy as np
import polars as pl
import pytest
from PIL import Image

from gmv_dagster.assets.galleries import (
    CELL,
    FONT,
    GAP,
    INLINE_MARKDOWN,
    PICTURES,
    gallery_image,
    picture,
    quality_gallery,
    values_gallery,
    wrap,
)
from gmv_dagster.method.credit import training_values

# Ids as long as real ones: a batch key, then a source name and a number (what used to be cut to its number).
TRAIN_IDS = [f"fashion-mnist-train:{i:05d}" for i in range(12)]
GEN_IDS = [f"demo-batch-0001/demo_generated:{j:06d}" for j in range(6)]
CLASSES = ("T-shirt", "Trouser", "Bag")


def _manifest(folder, ids, labels) -> pl.DataFrame:
    folder.mkdir()
    uris = []
    for i in range(len(ids)):
        uri = folder / f"{i}.png"
        Image.fromarray(np.full((28, 28), 20 * i, np.uint8)).save(uri)
        uris.append(str(uri))
    return pl.DataFrame({"id": ids, "uri": uris, "label": labels})


@pytest.fixture
def valued(tmp_path):
    """Training images 0-5 credited by the generated images, 6-11 never (value 0); two tied values (images 3 and 4)."""
    training = _manifest(tmp_path / "train", TRAIN_IDS, [CLASSES[i % 3] for i in range(12)])
    generated = _manifest(tmp_path / "gen", GEN_IDS, [CLASSES[j % 3] for j in range(6)])
    credit_of = {0: 0.9, 1: 0.7, 2: 0.5, 3: 0.2, 4: 0.2, 5: 0.1}
    credits = pl.DataFrame(
        {
            "gen_id": GEN_IDS,
            "train_id": [TRAIN_IDS[t] for t in credit_of],
            "rank": [1] * 6,
            "distance": [0.1] * 6,
            "weight": [1.0] * 6,
            "credit": list(credit_of.values()),
        },
        schema_overrides={"rank": pl.Int32},
    )
    return training_values(credits, training["id"]), credits, training, generated


def _subjects(section) -> list[tuple[str, ...]]:
    return [row.subject.lines for row in section.rows]


def test_the_bottom_gallery_shows_the_lowest_values_above_zero_and_counts_the_zeros(valued):
    values, credits, training, generated = valued
    summary, top, bottom = values_gallery(values, credits, training, generated, n=2)
    assert "6 of 12 training images have value > 0; 6 have value 0" in summary.caption
    assert "Ties are broken by train id" in summary.caption
    assert [lines[1] for lines in _subjects(top)] == [TRAIN_IDS[0], TRAIN_IDS[1]]
    # the two lowest positive values, in rank order: 3 and 4 tie at 0.2, so 4 (the later id) ranks below 3
    assert [lines[:2] for lines in _subjects(bottom)] == [
        ("rank 5 · value 0.2", TRAIN_IDS[4]),
        ("rank 6 · value 0.1", TRAIN_IDS[5]),
    ]
    assert not {lines[1] for lines in _subjects(bottom)} & set(TRAIN_IDS[6:])


def test_gallery_labels_hold_the_full_ids_and_classes(valued):
    values, credits, training, generated = valued
    _, top, _ = values_gallery(values, credits, training, generated, n=2)
    first = top.rows[0]
    assert first.subject.lines == ("rank 1 · value 0.9", TRAIN_IDS[0], "class T-shirt")
    assert first.partners[0].lines == ("credit 0.9", GEN_IDS[0], "class T-shirt")
    # without a label column (a manifest read as id, uri) the class line is left out, not invented
    _, top, _ = values_gallery(values, credits, training.drop("label"), generated, n=2)
    assert top.rows[0].subject.lines == ("rank 1 · value 0.9", TRAIN_IDS[0])


def test_fewer_positive_values_than_both_galleries_are_shown_once(valued):
    values, credits, training, generated = valued
    summary, top, bottom = values_gallery(values, credits, training, generated, n=4)
    shown = [lines[1] for lines in _subjects(top) + _subjects(bottom)]
    assert shown == TRAIN_IDS[:6]
    nothing = values.with_columns(value=pl.lit(0.0))
    assert [s.caption[:30] for s in values_gallery(nothing, credits, training, generated)] == [
        "0 of 12 training images have v"
    ]


def test_wrap_keeps_the_whole_id_and_elides_only_the_middle_of_a_longer_one():
    width = CELL - GAP
    for image_id in (*GEN_IDS, *TRAIN_IDS):
        lines = wrap(image_id, width, 3)
        assert "".join(lines) == image_id and all(FONT.getlength(line) <= width for line in lines)
    long_id = "a-very-long-batch-key-of-a-producer/" * 4 + "demo_generated:000123"
    lines = wrap(long_id, width, 3)
    assert len(lines) == 3 and lines[0].startswith("a-very-long")
    assert lines[-1].startswith("…") and lines[-1].endswith("demo_generated:000123")
    assert all(FONT.getlength(line) <= width for line in lines)


def test_quality_gallery_shows_the_extremes_beside_their_top_matches(valued):
    _, _, training, generated = valued
    scores = pl.DataFrame(
        {
            "gen_id": GEN_IDS,
            "q": [0.0, 0.0, 0.0, 0.5, 1.0, 0.9],
            "blur": [2.5, 1.0, 0.5, 0.3, -0.1, 0.0],
            "noise": [0.1] * 6,
            "blocking": [0.0] * 6,
        }
    )
    matches = pl.DataFrame(
        {
            "gen_id": [g for g in GEN_IDS for _ in range(4)],
            "train_id": [TRAIN_IDS[(j + r) % 12] for j in range(6) for r in range(4)],
            "rank": [r + 1 for _ in range(6) for r in range(4)],
            "distance": [0.1 * (r + 1) for _ in range(6) for r in range(4)],
        },
        schema_overrides={"rank": pl.Int32},
    )
    summary, lowest, highest = quality_gallery(scores, matches, training, generated, n=2, references=3)
    assert "6 generated images, 3 with q = 0; ties are broken by id" in summary.caption
    # three tie at q = 0: the first two by id
    assert [row.subject.lines for row in lowest.rows][0] == (
        "q 0.000",
        GEN_IDS[0],
        "class T-shirt",
        "blur 2.50  noise 0.10",
        "blocking 0.00",
    )
    assert [row.subject.lines[1] for row in lowest.rows] == GEN_IDS[:2]
    assert [row.subject.lines[:2] for row in highest.rows] == [("q 1.000", GEN_IDS[4]), ("q 0.900", GEN_IDS[5])]
    partners = highest.rows[0].partners
    assert [p.lines[:2] for p in partners] == [
        (f"match {r} · distance {0.1 * r:.3g}", TRAIN_IDS[(4 + r - 1) % 12]) for r in (1, 2, 3)
    ]


def test_gallery_image_sizes_its_rows_to_their_text(valued):
    values, credits, training, generated = valued
    sections = values_gallery(values, credits, training, generated, n=2)
    image = gallery_image(sections)
    assert image.width >= 2 * CELL and image.height >= 4 * 64  # four rows of 64-px tiles at least


def _materialise(instance, asset):
    result = dg.materialize([asset], instance=instance)
    assert result.success
    return result.asset_materializations_for_node(asset.key.to_python_identifier())[0].metadata


def _png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def test_picture_is_a_short_link_to_a_png_under_the_compute_logs(tmp_path):
    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["batch-1"]))
    def pictured(context) -> dg.MaterializeResult:
        image = Image.new("RGB", (300, 120), "white")
        return dg.MaterializeResult(metadata={"gallery": picture(context, "gallery", image, "a gallery")})

    @dg.asset(deps=[pictured])
    def summed(context) -> dg.MaterializeResult:
        image = Image.new("RGB", (50, 40), "white")
        return dg.MaterializeResult(metadata={"histogram": picture(context, "histogram", image, "a histogram")})

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        # one run of a batch, as the valuation job runs: its partition key reaches the unpartitioned asset too
        result = dg.materialize([pictured, summed], instance=instance, partition_key="batch-1")
        assert result.success
        run_id = result.run_id
        for asset, name, file_base, size in (
            ("pictured", "gallery", "pictured_batch-1_gallery", (300, 120)),
            ("summed", "histogram", "summed_histogram", (50, 40)),
        ):
            markdown = result.asset_materializations_for_node(asset)[0].metadata[name].value
            assert markdown == f"![a {name}](/logs/{PICTURES}/{run_id}/{file_base}/png)"
            assert len(markdown) < INLINE_MARKDOWN  # the UI's limit for showing markdown in place
            # the file the webserver's /logs/<key...>/<extension> route serves for that link
            key = re.fullmatch(r"!\[.*\]\(/logs/(.+)/png\)", markdown).group(1).split("/")
            path = instance.compute_log_manager.get_captured_local_path(key, "png")
            with open(path, "rb") as f:
                assert _png(f.read()).size == size


def test_picture_is_base64_where_the_compute_logs_are_not_local_files():
    @dg.asset
    def pictured(context) -> dg.MaterializeResult:
        image = Image.new("RGB", (200, 80), "white")
        return dg.MaterializeResult(metadata={"histogram": picture(context, "histogram", image, "a histogram")})

    # an ephemeral instance keeps no compute logs (NoOpComputeLogManager), as cloud-stored ones are not the
    # webserver's files
    metadata = _materialise(dg.DagsterInstance.ephemeral(), pictured)
    markdown = metadata["histogram"].value
    assert markdown.startswith("![a histogram](data:image/png;base64,")
    assert _png(base64.b64decode(markdown.split(",", 1)[1].rstrip(")"))).size == (200, 80)
