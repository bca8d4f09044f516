"""Pictures for asset metadata, drawn with PIL: the histogram of the training values and of a batch's q, and
galleries of images beside the images they go with (a training image and the generated images that credit it; a
generated image and its contributors, or its matched references). `picture` attaches each so that the Dagster UI
shows it on the asset's page."""

import base64
import io
import re
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from PIL import Image, ImageDraw, ImageFont

from ..common.files import write_atomically
from ..sources.images import load_images

TILE = 64  # px per image in a gallery
CELL = 148  # px per gallery column: a tile and the text under it (about 24 characters of an id a line)
BAR = 8  # px between a row's subject and its partners
GAP = 6
LINE = 13  # px per line of text
FONT = ImageFont.load_default(size=11)
PICTURES = "gmv_pictures"  # the compute-log namespace that the pictures are written under
INLINE_MARKDOWN = 1000  # the UI shows markdown shorter than this in place, longer behind "[Show Markdown]"


def picture(context, name: str, image: Image.Image, alt: str) -> dg.MetadataValue:
    """`image` as a markdown metadata entry that the Dagster UI shows in place, on the asset's page.

    The UI shows markdown of under 1000 characters in place and longer markdown (an image as base64) behind a
    "[Show Markdown]" link; the webserver serves the files of a LocalComputeLogManager's directory at
    /logs/<namespace...>/<file>/<extension>. So the PNG is written there, as
    gmv_pictures/<run id>/<asset>[_<partition>]_<name>.png (kept per run, like the run's logs), and the entry is a
    short link to it.

    Where the compute logs are not local files (an ephemeral instance, logs in cloud storage: the webserver could not
    read a file that the run wrote on its own machine), or the file cannot be written, the PNG goes into the markdown
    as base64 instead, which the UI shows after a click; a run never fails for a picture. The link is absolute from
    the server's root: a webserver behind --path-prefix does not find it.
    """
    manager = context.instance.compute_log_manager
    if isinstance(manager, LocalComputeLogManager):
        log_key = [PICTURES, context.run.run_id, _file_base(context, name)]
        try:
            path = Path(manager.get_captured_local_path(log_key, "png"))
            write_atomically(path, lambda tmp: image.save(tmp, format="PNG", optimize=True))
        except (OSError, ValueError) as exc:  # ValueError: a path outside the log directory
            context.log.warning(f"picture {name!r} not written under the compute logs ({exc}): attached as base64")
        else:
            markdown = f"![{alt}](/logs/{'/'.join(log_key)}/png)"
            if len(markdown) < INLINE_MARKDOWN:
                return dg.MetadataValue.md(markdown)
    return dg.MetadataValue.md(_png_markdown(image, alt))


def _file_base(context, name: str) -> str:
    """<asset>[_<partition>]_<name>, in characters that a URL path and a file name take as they are."""
    parts = [context.asset_key.to_python_identifier()]
    # a run of one batch carries its partition key to every asset in it, partitioned or not
    if context.has_partition_key and context.assets_def.partitions_def is not None:
        parts.append(context.partition_key)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", "_".join([*parts, name]))


def png_markdown(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return f"![plot](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def _png_markdown(image: Image.Image, alt: str) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def wrap(text: str, width: float, max_lines: int = 2, breaks: str = "/:") -> list[str]:
    """`text` in lines of at most `width` px, broken after any of `breaks` (or anywhere within a piece too wide).

    Beyond `max_lines` the middle goes: the first lines stay and the last one is "…" and the end of the text, so an
    id keeps its batch (its start) and its number (its end).
    """
    lines, line = [], ""
    for piece in re.split(f"(?<=[{re.escape(breaks)}])", text):
        if FONT.getlength(line + piece) <= width:
            line += piece
            continue
        if line:
            lines.append(line)
        while FONT.getlength(piece) > width and len(piece) > 1:
            cut = max(1, _longest_fitting(piece, width))
            lines.append(piece[:cut])
            piece = piece[cut:]
        line = piece
    if line or not lines:
        lines.append(line)
    if len(lines) > max_lines:
        tail = text[len(text) - _longest_fitting(text[::-1], width - FONT.getlength("…")) :]
        lines = [*lines[: max_lines - 1], "…" + tail]
    return [line.rstrip() for line in lines]


def _longest_fitting(text: str, width: float) -> int:
    """How many of `text`'s first characters fit in `width` px."""
    n = 0
    while n < len(text) and FONT.getlength(text[: n + 1]) <= width:
        n += 1
    return n


@dataclass(frozen=True)
class Tile:
    """An image of a gallery and the lines of text under it (each line whole; `wrap` fits it to the column)."""

    image: np.ndarray
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """A subject, a red bar, then the tiles that go with it (or `empty`, in gray, where none do)."""

    subject: Tile
    partners: tuple[Tile, ...]
    empty: str = ""


@dataclass(frozen=True)
class Section:
    """A caption over rows."""

    caption: str
    rows: tuple[Row, ...] = ()


def _tile(image: np.ndarray) -> Image.Image:
    tile = Image.fromarray(np.asarray(image)).convert("RGB")
    # Enlarged with square pixels (a 28-px image stays sharp), reduced with an average (no aliasing).
    resample = Image.NEAREST if max(tile.size) <= TILE else Image.BOX
    return tile.resize((TILE, TILE), resample)


def gallery_image(sections: list[Section]) -> Image.Image:
    """Each section: its caption, then one line per row (its subject, a red bar, its partners), text under each
    image."""
    columns = max((len(row.partners) for section in sections for row in section.rows), default=0)
    width = max(GAP + CELL + BAR + columns * CELL + GAP, 480)
    placed, y = [], GAP  # (y, caption lines) or (y, row, wrapped lines per tile)
    for section in sections:
        caption = [line for part in section.caption.splitlines() for line in wrap(part, width - 2 * GAP, 4, " ")]
        placed.append((y, caption))
        y += len(caption) * LINE + GAP
        for row in section.rows:
            texts = [
                [w for line in tile.lines for w in wrap(line, CELL - GAP, 3)] for tile in (row.subject, *row.partners)
            ]
            placed.append((y, row, texts))
            y += TILE + max(len(t) for t in texts) * LINE + 2 * GAP
    canvas = Image.new("RGB", (width, y + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    for item in placed:
        if len(item) == 2:
            y, caption = item
            for i, line in enumerate(caption):
                draw.text((GAP, y + i * LINE), line, fill="black", font=FONT)
            continue
        y, row, texts = item
        bar = GAP + CELL
        draw.line([(bar, y), (bar, y + TILE)], fill="red", width=2)
        if not row.partners and row.empty:
            draw.text((bar + BAR, y + TILE // 2 - LINE // 2), row.empty, fill="gray", font=FONT)
        for c, (tile, lines) in enumerate(zip((row.subject, *row.partners), texts)):
            x = GAP if c == 0 else bar + BAR + (c - 1) * CELL
            canvas.paste(_tile(tile.image), (x, y))
            for i, line in enumerate(lines):
                draw.text((x, y + TILE + 2 + i * LINE), line, fill="black", font=FONT)
    return canvas


def _manifest(images: pl.DataFrame, ids: pl.Series) -> dict[str, tuple[str, str | None]]:
    """id -> (uri, label) of the manifest rows with these ids (a gallery shows a few images of a manifest that may
    hold 10^6); label None where the manifest has none or was read without it."""
    label = pl.col("label") if "label" in images.columns else pl.lit(None, dtype=pl.String).alias("label")
    rows = images.join(ids.unique().to_frame("id"), on="id", how="semi").select("id", "uri", label)
    return {i: (uri, lab) for i, uri, lab in rows.iter_rows()}


def _tile_of(manifest: dict, image_id: str, image: np.ndarray, first: str, *more: str) -> Tile:
    """A tile labelled `first`, the full id, its class where known, then `more`."""
    label = manifest[image_id][1]
    return Tile(image, (first, image_id, *((f"class {label}",) if label is not None else ()), *more))


def values_gallery_image(
    values: pl.DataFrame,
    credits: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    n: int = 5,
    partners: int = 6,
) -> Image.Image:
    return gallery_image(values_gallery(values, credits, training_images, generated_images, n, partners))


def values_gallery(
    values: pl.DataFrame,
    credits: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    n: int = 5,
    partners: int = 6,
) -> list[Section]:
    """The n most valuable training images and the n least valuable of those with value > 0, each beside the
    generated images that credit it most. The images at value 0 (often most of a training set) are counted in the
    caption, not shown. `values` is in rank order (value descending, ties by train id), and so are the rows."""
    positive = values.filter(pl.col("value") > 0)
    top = positive.head(n)
    bottom = positive.slice(top.height).tail(n)
    picked = pl.concat([top, bottom])
    train = _manifest(training_images, picked["train_id"])
    credited = credits.join(picked.select("train_id"), on="train_id", how="semi")
    gen = _manifest(generated_images, credited["gen_id"])

    def row(train_id: str, value: float, rank: int) -> Row:
        # most credit first, ties by generated id
        top_credits = (
            credited.filter(pl.col("train_id") == train_id)
            .sort(["credit", "gen_id"], descending=[True, False])
            .head(partners)
        )
        images = load_images([gen[g][0] for g in top_credits["gen_id"]])
        return Row(
            _tile_of(train, train_id, load_images([train[train_id][0]])[0], f"rank {rank} · value {value:.3g}"),
            tuple(
                _tile_of(gen, g, image, f"credit {c:.3g}")
                for g, c, image in zip(top_credits["gen_id"], top_credits["credit"], images)
            ),
            "no generated image credits it",
        )

    zero = values.height - positive.height
    summary = (
        f"{positive.height:,} of {values.height:,} training images have value > 0; {zero:,} have value 0 (never "
        "matched, or matched by images with q = 0) and are not shown. Ties are broken by train id, as ranked."
    )
    rows = [row(*r) for r in picked.select("train_id", "value", "rank").iter_rows()]
    sections = [Section(summary)]
    if top.height:
        sections.append(
            Section(
                f"Top {top.height} by value, each beside the generated images that credit it most:",
                tuple(rows[: top.height]),
            )
        )
    if bottom.height:
        sections.append(
            Section(f"Bottom {bottom.height}: the lowest values above 0, lowest last:", tuple(rows[top.height :]))
        )
    return sections


def contributors_image(
    credits: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    gen_ids: list[str],
    partners: int = 6,
    caption: str = "",
) -> Image.Image:
    """Each generated image (with its q, the sum of its credits) beside its top contributors, by rank, labelled with
    their weights."""
    gen = _manifest(generated_images, pl.Series(gen_ids, dtype=pl.String))
    mine = credits.filter(pl.col("gen_id").is_in(gen_ids))
    train = _manifest(training_images, mine["train_id"])
    rows = []
    for gen_id in gen_ids:
        matched = mine.filter(pl.col("gen_id") == gen_id)
        top = matched.sort("rank").head(partners)
        images = load_images([train[t][0] for t in top["train_id"]])
        rows.append(
            Row(
                _tile_of(gen, gen_id, load_images([gen[gen_id][0]])[0], f"q {float(matched['credit'].sum()):.3g}"),
                tuple(
                    _tile_of(train, t, image, f"rank {r} · weight {w:.2f}")
                    for t, r, w, image in zip(top["train_id"], top["rank"], top["weight"], images)
                ),
                "no matches",
            )
        )
    return gallery_image([Section(caption, tuple(rows))])


def quality_gallery_image(
    scores: pl.DataFrame,
    matches: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    n: int = 3,
    references: int = 3,
) -> Image.Image:
    return gallery_image(quality_gallery(scores, matches, training_images, generated_images, n, references))


def quality_gallery(
    scores: pl.DataFrame,
    matches: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    n: int = 3,
    references: int = 3,
) -> list[Section]:
    """The n lowest-q and the n highest-q generated images of a batch (ties by id), each labelled with q and its blur,
    noise and blocking departures and beside its top `references` matched training images."""
    ascending = scores.sort(["q", "gen_id"])
    lowest = ascending.head(n)
    highest = ascending.slice(lowest.height).sort(["q", "gen_id"], descending=[True, False]).head(n)
    shown = pl.concat([lowest, highest])
    refs = matches.join(shown.select("gen_id"), on="gen_id", how="semi").filter(pl.col("rank") <= references)
    gen = _manifest(generated_images, shown["gen_id"])
    train = _manifest(training_images, refs["train_id"])

    def row(score: dict) -> Row:
        mine = refs.filter(pl.col("gen_id") == score["gen_id"]).sort("rank")
        images = load_images([train[t][0] for t in mine["train_id"]])
        departures = [
            f"{name} {score[name]:.2f}" for name in ("blur", "noise", "blocking") if score.get(name) is not None
        ]
        return Row(
            _tile_of(
                gen,
                score["gen_id"],
                load_images([gen[score["gen_id"]][0]])[0],
                f"q {score['q']:.3f}",
                *(["  ".join(departures[:2]), *departures[2:]] if departures else []),
            ),
            tuple(
                _tile_of(train, t, image, f"match {r} · distance {d:.3g}")
                for t, r, d, image in zip(mine["train_id"], mine["rank"], mine["distance"], images)
            ),
            "no matches",
        )

    zero = int((scores["q"] == 0).sum())
    summary = (
        f"{scores.height:,} generated images, {zero:,} with q = 0; ties are broken by id. Blur, noise, blocking: "
        "departures from the matched training images, in log units (0 or less: none)."
    )
    sections = [Section(summary)]
    if lowest.height:
        sections.append(
            Section(
                f"Lowest q ({lowest.height}), each beside its top matches:",
                tuple(map(row, lowest.iter_rows(named=True))),
            )
        )
    if highest.height:
        sections.append(Section(f"Highest q ({highest.height}):", tuple(map(row, highest.iter_rows(named=True)))))
    return sections


def histogram_image(
    values: np.ndarray, caption: str, xlabel: str, bins: int = 50, value_range: tuple[float, float] | None = None
) -> Image.Image:
    """Histogram of `values`, counts on a log axis, drawn with PIL: importing matplotlib costs a step about 1 s, as
    much as the rest of `training_values` at 10^6 training images."""
    v = np.asarray(values, dtype=np.float64)
    counts, edges = (
        np.histogram(v, bins=bins, range=value_range)
        if v.size
        else (np.zeros(bins, np.int64), np.linspace(*(value_range or (0, 1)), bins + 1))
    )
    width, height, left, top, bottom = 560, 236, 76, 42, 36
    plot_w, plot_h = width - left - 12, height - top - bottom
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((left, 4), caption, fill="black", font=FONT)
    decades = max(1, int(np.ceil(np.log10(max(int(counts.max()), 1) + 1))))

    def y_of(count):
        return top + plot_h - plot_h * np.log10(count) / decades  # count >= 1 on a log axis from 1

    bar_w = plot_w / bins
    for b, count in enumerate(counts):
        if count:
            x0 = left + b * bar_w
            draw.rectangle(
                [x0, min(y_of(count), top + plot_h - 1), x0 + max(bar_w - 1, 1), top + plot_h], fill=(31, 119, 180)
            )
    draw.line([(left, top), (left, top + plot_h), (left + plot_w, top + plot_h)], fill="black")
    for d in range(decades + 1):
        y, label = y_of(10**d), f"{10**d:,}"
        draw.line([(left - 4, y), (left, y)], fill="black")
        draw.text((max(0, left - 6 - draw.textlength(label, font=FONT)), y - 6), label, fill="black", font=FONT)
    for x, edge in ((left, edges[0]), (left + plot_w / 2, (edges[0] + edges[-1]) / 2), (left + plot_w, edges[-1])):
        draw.line([(x, top + plot_h), (x, top + plot_h + 4)], fill="black")
        draw.text((x - 12, top + plot_h + 6), f"{edge:.3g}", fill="black", font=FONT)
    draw.text(
        (left + plot_w / 2 - draw.textlength(xlabel, font=FONT) / 2, height - 14), xlabel, fill="black", font=FONT
    )
    draw.text((4, top - 16), "images (log)", fill="black", font=FONT)
    return canvas


def values_histogram_image(values: np.ndarray) -> Image.Image:
    """The training values above 0 (the zeros, often most of a training set, would flatten the rest: counted in the
    caption)."""
    v = np.asarray(values, dtype=np.float64)
    positive = v[v > 0]
    return histogram_image(positive, f"values: {positive.size:,} of {v.size:,} training images have value > 0", "value")


def quality_histogram_image(q: np.ndarray, batch: str) -> Image.Image:
    """A batch's q on [0, 1], zeros included."""
    q = np.asarray(q, dtype=np.float64)
    return histogram_image(
        q, f"q of batch {batch}: {q.size:,} generated images, {int((q == 0).sum()):,} with q = 0", "q", 20, (0.0, 1.0)
    )
