"""Image domains of different kinds and sizes for benchmarking the quality score, built only from pixels
that ship in Debian or PyPI packages (no downloads at run time).

domain       kind         px   source; install command
fashion-28   grey         28   Fashion-MNIST train images, /usr/share/datasets/fashion-mnist;
                               apt-get install -y dataset-fashion-mnist
sklearn-48   photo        48   crops of scikit-learn's 2 sample photos (near_copies.photo_crops);
                               .venv/bin/pip install scikit-learn
sklearn-64   photo        64   the same at 64 px
photos-256   photo        256  tiles of 26 photos: mate-backgrounds' nature/ (12), 12 Plasma wallpapers, 2 Lomiri
                               wallpapers; apt-get install -y mate-backgrounds plasma-workspace-wallpapers
                               lomiri-wallpapers-20.04
photos-512   photo        512  the same photos, 512 px tiles (only about 385 per seed; photos-256 has about 1,360)
photos-64    photo        64   the same photos, 64 px tiles (held out in bench/attribution.py and, since
                               2026-12-07, in bench/quality_domains.py)
drawings-96  drawing      96   Oxygen icon theme PNGs (shaded clip art), alpha over white;
                               apt-get install -y oxygen-icon-theme
flat-64      flat-colour  64   Paper icon theme 512 px PNGs (flat design), alpha over white;
                               apt-get install -y paper-icon-theme
symbols-64   symbols      64   glyphs drawn with PIL from DejaVu and Liberation TrueType fonts, black on white;
                               apt-get install -y fonts-dejavu-core fonts-liberation

The photos-* domains share no pixels with scikit-learn's photos (the ones the score was tuned on). Their tiles
never overlap (a grid per photo, its offset drawn from the seed) and flat ones (grey std < 8) are refused.
Every domain returns distinct images (no two equal, none with grey std < 4), deterministic from (n, seed):
file listings are sorted before the seed's permutation. `load_domain` raises ValueError when a domain
has fewer than n such images.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import string
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gmv_dagster.evaluation.near_copies import photo_crops
from gmv_dagster.sources.fashion_mnist import DEBIAN_FASHION_MNIST
from gmv_dagster.sources.images import read_idx

MIN_STD = 4.0  # below this an image is blank for every method
MIN_PHOTO_STD = 8.0  # as photo_crops: a flatter tile (sky, bokeh) cannot be told from its neighbours
GREY = np.array([0.299, 0.587, 0.114])

FASHION = DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz"
MATE_NATURE = Path("/usr/share/backgrounds/mate/nature")
PLASMA = Path("/usr/share/wallpapers")
# The Plasma wallpapers that are photographs (the others are renders / vector art); each at its largest size.
PLASMA_PHOTOS = (
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "Volna",
    "summer_1am",
)
# Two large photos (4096 px, 6028 px) that give photos-512 room: without them some seeds have < 300 tiles.
LOMIRI_PHOTOS = (
    Path("/usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg"),
    Path("/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg"),
)
OXYGEN = Path("/usr/share/icons/oxygen/base")
PAPER = Path("/usr/share/icons/Paper/512x512")
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
LIBERATION = Path("/usr/share/fonts/truetype/liberation")
# Named, not globbed, so that fonts-dejavu-extra or a newer fonts-liberation cannot change the images.
FONTS = tuple(
    DEJAVU / f"DejaVu{f}.ttf" for f in ("Sans", "Sans-Bold", "Serif", "Serif-Bold", "SansMono", "SansMono-Bold")
) + tuple(
    LIBERATION / f"Liberation{f}-{s}.ttf"
    for f in ("Sans", "Serif", "Mono")
    for s in ("Regular", "Bold", "Italic", "BoldItalic")
)
ASCII = string.ascii_letters + string.digits + string.punctuation + "§¶©®£¥€"
EXTRA = "←↑→↓↔★☆♠♣♥♦☺☼♪♫✓✗∞∑∫√≈≠≤≥αβγδλπΣΩ"  # DejaVu only: Liberation lacks most of these


@dataclass(frozen=True)
class Domain:
    name: str  # e.g. "photos-256"
    kind: str  # "grey", "photo", "drawing", "flat-colour", "symbols"
    size: int  # the images' side in px (every domain's images are square)
    colour: bool
    source: str  # one line: where the pixels come from


def _grey_std(img: np.ndarray) -> float:
    return float((img.astype(np.float64) @ GREY).std() if img.ndim == 3 else img.std())


def _take(candidates: Iterable[np.ndarray], n: int, name: str) -> list[np.ndarray]:
    """The first n candidates that are neither blank nor equal to an earlier one."""
    seen: set[bytes] = set()
    out: list[np.ndarray] = []
    for img in candidates:
        if len(out) == n:
            break
        key = hashlib.sha1(np.ascontiguousarray(img).tobytes()).digest()
        if key not in seen and _grey_std(img) >= MIN_STD:
            seen.add(key)
            out.append(np.ascontiguousarray(img))
    if len(out) < n:
        raise ValueError(f"{name}: only {len(out)} distinct non-blank images available, asked for {n}")
    return out


def _fashion(n: int, size: int, seed: int) -> Iterator[np.ndarray]:
    images = read_idx(FASHION)
    return (images[i] for i in np.random.default_rng(seed).permutation(len(images)))


def _sklearn(n: int, size: int, seed: int) -> Iterator[np.ndarray]:
    # photo_crops is the tuning domain as the benchmarks already use it; its own seed keeps it identical to them.
    return iter(photo_crops(n, size, seed))


def _photo_paths() -> list[Path]:
    plasma = [max(sorted((PLASMA / d / "contents/images").glob("*.jpg")), key=_pixels) for d in PLASMA_PHOTOS]
    return sorted(MATE_NATURE.glob("*.jpg")) + plasma + list(LOMIRI_PHOTOS)


def _pixels(path: Path) -> int:
    with Image.open(path) as im:  # reads the header only
        return im.width * im.height


def _photo_tiles(n: int, size: int, seed: int) -> Iterator[np.ndarray]:
    """Non-overlapping size x size tiles of every photo (a grid, offset by the seed), flat ones refused, shuffled."""
    rng = np.random.default_rng(seed)
    tiles: list[np.ndarray] = []
    for path in _photo_paths():
        with Image.open(path) as im:
            photo = np.asarray(im.convert("RGB"))
        h, w = photo.shape[:2]
        oy, ox = int(rng.integers(h % size + 1)), int(rng.integers(w % size + 1))
        for y in range(oy, h - size + 1, size):
            for x in range(ox, w - size + 1, size):
                tile = photo[y : y + size, x : x + size]
                if _grey_std(tile) >= MIN_PHOTO_STD:
                    tiles.append(tile.copy())  # a copy, so that each photo is freed after its tiles
    return (tiles[i] for i in rng.permutation(len(tiles)))


def _on_white(data: bytes, size: int) -> np.ndarray:
    """An icon file as size x size RGB, its transparency composited over white (as clip art is printed)."""
    with Image.open(io.BytesIO(data)) as im:
        rgba = im.convert("RGBA")
    if rgba.size != (size, size):
        rgba = rgba.resize((size, size), Image.Resampling.LANCZOS)
    page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    page.alpha_composite(rgba)
    return np.asarray(page.convert("RGB"))


def _icons(files: list[Path], size: int, seed: int) -> Iterator[np.ndarray]:
    # Themes alias one drawing under many names (symlinks, copies: Paper's 2,226 files hold 648 drawings):
    # equal files are skipped before decoding (the slow part), and _take drops any repeat left by pixels.
    seen: set[bytes] = set()
    for i in np.random.default_rng(seed).permutation(len(files)):
        data = files[i].read_bytes()
        key = hashlib.sha1(data).digest()
        if key not in seen:
            seen.add(key)
            yield _on_white(data, size)


def _oxygen_files() -> list[Path]:
    """Each Oxygen icon once, at its largest size >= 96 px (256 px where drawn, else 128 px)."""
    best: dict[str, Path] = {}
    for res in ("128x128", "256x256"):  # the later, larger size wins
        for p in sorted((OXYGEN / res).rglob("*.png")):
            best[str(p.relative_to(OXYGEN / res))] = p
    return [best[k] for k in sorted(best)]


def _drawings(n: int, size: int, seed: int) -> Iterator[np.ndarray]:
    return _icons(_oxygen_files(), size, seed)


def _flat(n: int, size: int, seed: int) -> Iterator[np.ndarray]:
    return _icons(sorted(PAPER.rglob("*.png")), size, seed)


def _glyphs(n: int, size: int, seed: int) -> Iterator[np.ndarray]:
    """Black glyphs on white: random font, character, point size and position (the glyph always fits)."""
    rng = np.random.default_rng(seed)
    fonts = [str(f) for f in FONTS]
    for _ in range(50 * n + 1000):  # bounded: _take reports a shortfall instead of looping for ever
        font_path = fonts[int(rng.integers(len(fonts)))]
        chars = ASCII + EXTRA if "DejaVu" in font_path else ASCII
        ch = chars[int(rng.integers(len(chars)))]
        font = ImageFont.truetype(font_path, int(rng.integers(size * 3 // 10, size * 9 // 10)))
        left, top, right, bottom = font.getbbox(ch)
        w, h = right - left, bottom - top
        if w < 1 or h < 1 or w > size - 4 or h > size - 4:
            continue
        x, y = int(rng.integers(2, size - w - 1)) - left, int(rng.integers(2, size - h - 1)) - top
        page = Image.new("L", (size, size), 255)
        ImageDraw.Draw(page).text((x, y), ch, fill=0, font=font)
        yield np.asarray(page)


_Maker = Callable[[int, int, int], Iterator[np.ndarray]]  # (n, size, seed) -> candidates
_PHOTO_DEBS = "apt-get install -y mate-backgrounds plasma-workspace-wallpapers lomiri-wallpapers-20.04"
_PHOTO_NEEDS = (str(MATE_NATURE), str(PLASMA / "Volna"), *map(str, LOMIRI_PHOTOS))
_SKLEARN = ".venv/bin/pip install scikit-learn"
# name -> (domain, maker, what must exist: paths, or "module:NAME", install command)
_SPECS: dict[str, tuple[Domain, _Maker, tuple[str, ...], str]] = {
    "fashion-28": (
        Domain("fashion-28", "grey", 28, False, f"Fashion-MNIST train images, {FASHION}"),
        _fashion,
        (str(FASHION),),
        "apt-get install -y dataset-fashion-mnist",
    ),
    "sklearn-48": (
        Domain(
            "sklearn-48",
            "photo",
            48,
            True,
            "crops of sklearn.datasets.load_sample_images (china, flower) via photo_crops",
        ),
        _sklearn,
        ("module:sklearn",),
        _SKLEARN,
    ),
    "sklearn-64": (
        Domain(
            "sklearn-64",
            "photo",
            64,
            True,
            "crops of sklearn.datasets.load_sample_images (china, flower) via photo_crops",
        ),
        _sklearn,
        ("module:sklearn",),
        _SKLEARN,
    ),
    "photos-256": (
        Domain(
            "photos-256",
            "photo",
            256,
            True,
            "non-overlapping tiles of 26 photos: "
            f"{MATE_NATURE}/*.jpg (mate-backgrounds), {PLASMA}/<12>/contents/images "
            "(plasma-workspace-wallpapers), 2 of lomiri-wallpapers-20.04",
        ),
        _photo_tiles,
        _PHOTO_NEEDS,
        _PHOTO_DEBS,
    ),
    "photos-64": (
        Domain("photos-64", "photo", 64, True, "as photos-256, 64 px tiles (bench/attribution.py's held-out photos)"),
        _photo_tiles,
        _PHOTO_NEEDS,
        _PHOTO_DEBS,
    ),
    "photos-512": (
        Domain("photos-512", "photo", 512, True, "as photos-256, 512 px tiles"),
        _photo_tiles,
        _PHOTO_NEEDS,
        _PHOTO_DEBS,
    ),
    "drawings-96": (
        Domain(
            "drawings-96",
            "drawing",
            96,
            True,
            f"Oxygen icons {OXYGEN}/{{256,128}}x* PNG (oxygen-icon-theme), alpha over white",
        ),
        _drawings,
        (str(OXYGEN / "256x256"),),
        "apt-get install -y oxygen-icon-theme",
    ),
    "flat-64": (
        Domain("flat-64", "flat-colour", 64, True, f"Paper icons {PAPER}/*/*.png (paper-icon-theme), alpha over white"),
        _flat,
        (str(PAPER),),
        "apt-get install -y paper-icon-theme",
    ),
    "symbols-64": (
        Domain(
            "symbols-64",
            "symbols",
            64,
            False,
            "glyphs drawn with PIL from DejaVu (fonts-dejavu-core)"
            " and Liberation (fonts-liberation) TTFs, black on white",
        ),
        _glyphs,
        tuple(str(f) for f in FONTS),
        "apt-get install -y fonts-dejavu-core fonts-liberation",
    ),
}
DOMAINS: dict[str, Domain] = {name: spec[0] for name, spec in _SPECS.items()}


def missing(name: str) -> str | None:
    """None when the domain's source is installed, else one line with the command that installs it."""
    _, _, needs, install = _SPECS[name]
    for need in needs:
        gone = (importlib.util.find_spec(need[7:]) is None) if need.startswith("module:") else not Path(need).exists()
        if gone:
            return f"{name}: {need.removeprefix('module:')} is missing; install it with: {install}"
    return None


def load_domain(name: str, n: int, seed: int = 0) -> list[np.ndarray]:
    """n distinct images of the domain (uint8, HxW grey or HxWx3 RGB), the same for the same (name, n, seed)."""
    domain, maker, _, _ = _SPECS[name]
    problem = missing(name)
    if problem:
        raise FileNotFoundError(problem)
    return _take(maker(n, domain.size, seed), n, name)
