"""Pictures for asset metadata: the value histogram and galleries of training images beside the
generated images they were credited by (and the reverse), as base64 PNG inside markdown."""

import base64
import io

import numpy as np
import polars as pl
from PIL import Image, ImageDraw

from ..sources.images import load_images

TILE = 56  # px per image in a gallery
GAP = 6


def png_markdown(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return f"![plot](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def _png_markdown(image: Image.Image, alt: str) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def _tile(image: np.ndarray) -> Image.Image:
    return Image.fromarray(np.asarray(image)).convert("RGB").resize((TILE, TILE), Image.NEAREST)


def gallery_image(rows: list[tuple[str, np.ndarray, list[tuple[str, np.ndarray]]]]) -> Image.Image:
    """One line per row: a labelled image, a bar, then the labelled images that go with it."""
    width = max(1, max((len(r[2]) for r in rows), default=0)) + 1
    line_h = TILE + 14
    canvas = Image.new("RGB", (width * (TILE + GAP) + GAP * 2, max(1, len(rows)) * line_h + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    for r, (label, image, partners) in enumerate(rows):
        y = GAP + r * line_h
        canvas.paste(_tile(image), (GAP, y))
        draw.text((GAP, y + TILE), label[:11], fill="black")
        draw.line([(TILE + GAP * 2 - 2, y), (TILE + GAP * 2 - 2, y + TILE)], fill="red", width=2)
        if not partners:
            draw.text((TILE + GAP * 3, y + TILE // 2 - 5), "no generated image credits it", fill="gray")
        for c, (text, partner) in enumerate(partners):
            x = GAP * 2 + (c + 1) * (TILE + GAP)
            canvas.paste(_tile(partner), (x, y))
            draw.text((x, y + TILE), text[:11], fill="black")
    return canvas


def _uris(images: pl.DataFrame, ids: pl.Series) -> dict[str, str]:
    """id -> uri of the manifest rows with these ids (a gallery shows a few images of a manifest that may hold 10^6)."""
    return dict(images.join(ids.unique().to_frame("id"), on="id", how="semi").select("id", "uri").iter_rows())


def values_gallery(
    values: pl.DataFrame,
    credits: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    n: int = 5,
    partners: int = 6,
) -> str:
    """The n top- and n bottom-valued training images, each beside the generated images that credit it most."""
    picked = pl.concat([values.head(n), values.tail(n)])
    uri_train = _uris(training_images, picked["train_id"])
    uri_gen = _uris(generated_images, credits.join(picked.select("train_id"), on="train_id", how="semi")["gen_id"])
    rows = []
    for train_id, value, rank in picked.select("train_id", "value", "rank").iter_rows():
        top = credits.filter(pl.col("train_id") == train_id).sort("credit", descending=True).head(partners)
        gens = load_images([uri_gen[g] for g in top["gen_id"]])
        rows.append(
            (
                f"#{rank} {value:.3g}",
                load_images([uri_train[train_id]])[0],
                [(f"c={c:.2f}", img) for c, img in zip(top["credit"], gens)],
            )
        )
    return _png_markdown(
        gallery_image(rows), "top and bottom training images by value, beside the generated images that credit them"
    )


def contributors_image(
    credits: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    gen_ids: list[str],
    partners: int = 6,
) -> Image.Image:
    """Each generated image beside its top contributors, labelled with their weights."""
    uri_gen = _uris(generated_images, pl.Series(gen_ids, dtype=pl.String))
    uri_train = _uris(training_images, credits.filter(pl.col("gen_id").is_in(gen_ids))["train_id"])
    rows = []
    for gen_id in gen_ids:
        top = credits.filter(pl.col("gen_id") == gen_id).sort("rank").head(partners)
        images = load_images([uri_train[t] for t in top["train_id"]])
        rows.append(
            (
                gen_id.split(":")[-1].split("/")[-1],
                load_images([uri_gen[gen_id]])[0],
                [(f"w={w:.2f}", img) for w, img in zip(top["weight"], images)],
            )
        )
    return gallery_image(rows)


def contributors_gallery(
    credits: pl.DataFrame,
    training_images: pl.DataFrame,
    generated_images: pl.DataFrame,
    gen_ids: list[str],
    partners: int = 6,
) -> str:
    return _png_markdown(
        contributors_image(credits, training_images, generated_images, gen_ids, partners),
        "generated images beside their top contributors",
    )


def histogram(values: np.ndarray, title: str, bins: int = 50) -> str:
    """Histogram of the positive values, counts on a log axis, drawn with PIL: importing matplotlib costs a step
    about 1 s, as much as the rest of `training_values` at 10^6 training images."""
    v = np.asarray(values, dtype=np.float64)
    positive = v[v > 0]
    counts, edges = (
        np.histogram(positive, bins=bins) if positive.size else (np.zeros(bins, np.int64), np.linspace(0, 1, bins + 1))
    )
    width, height, left, top, bottom = 560, 236, 76, 42, 36
    plot_w, plot_h = width - left - 12, height - top - bottom
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((left, 4), f"{title}: {positive.size:,} of {v.size:,} images have value > 0", fill="black")
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
        draw.text((max(0, left - 6 - draw.textlength(label)), y - 5), label, fill="black")
    for x, edge in ((left, edges[0]), (left + plot_w / 2, (edges[0] + edges[-1]) / 2), (left + plot_w, edges[-1])):
        draw.line([(x, top + plot_h), (x, top + plot_h + 4)], fill="black")
        draw.text((x - 12, top + plot_h + 6), f"{edge:.3g}", fill="black")
    draw.text((left + plot_w / 2 - 14, height - 14), "value", fill="black")
    draw.text((4, top - 16), "images (log)", fill="black")
    return _png_markdown(canvas, title)
