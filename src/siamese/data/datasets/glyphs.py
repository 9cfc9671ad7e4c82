"""`glyphs`: an offline source of many character classes, rendered from matplotlib's fonts.

Each class is one character (Latin upper and lower case, digits, Greek and Cyrillic letters);
each "writer" is one font style that ships with matplotlib (DejaVu Sans, Sans Mono, Serif and
STIX General, each regular, bold, italic and bold italic: 16 writers). Every (character,
writer) is rendered once on a 56×56 canvas with the baseline at a fixed height (so case and
descenders stay visible), then drawn `variants` times with a seeded random rotation, scale and
translation and downsampled to 28×28 — white ink on black, like MNIST.

Characters that look the same as an earlier one (Latin A, Greek Alpha and Cyrillic A share one
outline in these fonts) would be two classes with identical images, so every character whose
rendering matches an earlier character's in most fonts is dropped; `GLYPH_ALPHABETS` minus those
leaves the classes (143 with the default fonts and alphabets).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import ft2font

from siamese.cache import cache_dir, load_npz, save_npz_atomic
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError

GLYPH_ALPHABETS: dict[str, str] = {
    "latin_upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "latin_lower": "abcdefghijklmnopqrstuvwxyz",
    "digits": "0123456789",
    "greek_upper": "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ",
    "greek_lower": "αβγδεζηθικλμνξοπρσςτυφχψω",
    "cyrillic_upper": "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ",
    "cyrillic_lower": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
}

GLYPH_FONTS: tuple[str, ...] = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf",
    "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
)

_FORMAT_VERSION = 2
_CANVAS = 56  # render at twice the output size, then average-pool: antialiased strokes
_FONT_PIXELS = 38
_BASELINE_ROW = 40  # accents reach ~row 5, descenders ~row 50
# Look-alikes are compared blurred to 14×14 by sum |a − b| / sum (a + b): one outline gives 0,
# Latin O and Greek Omicron (a slightly different drawing) 0.023, O and Q 0.05, E and Ё 0.06.
_LOOKALIKE_TOLERANCE = 0.035


def font_path(file_name: str) -> Path:
    """Path of a font file shipped in matplotlib's data directory."""
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / file_name


def render_glyph(font: ft2font.FT2Font, char: str) -> np.ndarray | None:
    """One character on a (56, 56) float32 canvas, ink in [0, 1], horizontally centred, its
    baseline at a fixed row; None when the font has no glyph for it."""
    if font.get_char_index(ord(char)) == 0:
        return None
    font.set_text(char, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    bitmap = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    _, height_26_6 = font.get_width_height()
    # The bitmap has one pixel of padding above the text box; the baseline lies the box
    # height minus the descent below it (FreeType's 26.6 fixed point: 1/64 pixel).
    baseline_in_bitmap = 1 + round((height_26_6 - font.get_descent()) / 64)
    cols = np.nonzero(bitmap.max(axis=0) > 0)[0]
    if cols.size == 0:
        return None
    bitmap = bitmap[:, cols[0] : cols[-1] + 1]
    canvas = np.zeros((_CANVAS, _CANVAS), dtype=np.float32)
    top = _BASELINE_ROW - baseline_in_bitmap
    left = (_CANVAS - bitmap.shape[1]) // 2
    # Clip to the canvas (no glyph of these fonts reaches its edge at this size).
    r0, c0 = max(top, 0), max(left, 0)
    r1 = min(top + bitmap.shape[0], _CANVAS)
    c1 = min(left + bitmap.shape[1], _CANVAS)
    canvas[r0:r1, c0:c1] = bitmap[r0 - top : r1 - top, c0 - left : c1 - left]
    return canvas


def render_templates(chars: list[str], fonts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Every character in every font.

    Returns:
        templates: (C, F, 56, 56) float32 renderings (zeros where missing).
        present: (C, F) bool, whether the font has the character.
    """
    templates = np.zeros((len(chars), len(fonts), _CANVAS, _CANVAS), dtype=np.float32)
    present = np.zeros((len(chars), len(fonts)), dtype=bool)
    for f, name in enumerate(fonts):
        path = font_path(name)
        if not path.is_file():
            raise ConfigError(f"font {name!r} is not in matplotlib's fonts ({path.parent})")
        font = ft2font.FT2Font(str(path))
        font.set_size(_FONT_PIXELS, 72)  # at 72 dpi one point is one pixel
        for c, char in enumerate(chars):
            canvas = render_glyph(font, char)
            if canvas is not None:
                templates[c, f] = canvas
                present[c, f] = True
    return templates, present


def lookalike_characters(templates: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Which characters look like an earlier (kept) character.

    Two characters look alike when, blurred to a quarter of the canvas size, the median over
    the fonts having both of sum |a − b| / sum (a + b) is below `_LOOKALIKE_TOLERANCE`.

    Args:
        templates: (C, F, H, W) renderings; present: (C, F) bool.
    Returns:
        (C,) bool, True for a character to drop.
    """
    n_chars, n_fonts = present.shape
    blurred = torch.nn.functional.avg_pool2d(torch.from_numpy(templates).flatten(0, 1)[:, None], 4)
    per_font = blurred.reshape(n_chars, n_fonts, -1).transpose(0, 1)  # (F, C, P)
    ink = per_font.sum(-1)
    relative = torch.cdist(per_font, per_font, p=1) / (ink[:, :, None] + ink[:, None, :]).clamp_min(
        1e-6
    )
    fonts_ok = torch.from_numpy(present).T
    shared = fonts_ok[:, :, None] & fonts_ok[:, None, :]
    median = relative.masked_fill(~shared, float("nan")).nanmedian(dim=0).values  # (C, C)
    same_look = (median < _LOOKALIKE_TOLERANCE).numpy()  # NaN (no shared font) compares False
    drop = np.zeros(n_chars, dtype=bool)
    for c in range(n_chars):
        drop[c] = bool((same_look[c, :c] & ~drop[:c]).any())
    return drop


def random_affine_batch(
    templates: torch.Tensor,
    generator: torch.Generator,
    max_rotation_deg: float,
    max_shift: float,
    scale_range: tuple[float, float],
) -> torch.Tensor:
    """Apply an independent random rotation, scale and shift to every image.

    Args:
        templates: (N, 1, H, W) float images.
        max_rotation_deg: rotations uniform in ±this many degrees.
        max_shift: shifts uniform in ±this fraction of the half-width (affine_grid units).
        scale_range: zoom factors uniform in this range.
    Returns:
        (N, 1, H, W) transformed images (bilinear, zeros outside).
    """
    n = templates.shape[0]
    angle = (torch.rand(n, generator=generator) * 2 - 1) * np.deg2rad(max_rotation_deg)
    scale = scale_range[0] + torch.rand(n, generator=generator) * (scale_range[1] - scale_range[0])
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * max_shift
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = torch.nn.functional.affine_grid(theta, list(templates.shape), align_corners=False)
    return torch.nn.functional.grid_sample(templates, grid, align_corners=False)


def load_glyphs(
    variants: int = 8,
    seed: int = 0,
    fonts: tuple[str, ...] = GLYPH_FONTS,
    alphabets: tuple[str, ...] = tuple(GLYPH_ALPHABETS),
    use_cache: bool = True,
) -> LabeledData:
    """The `glyphs` dataset: rendered characters, one class per character, one writer per font.

    Args:
        variants: random variants of every (character, font).
        seed: seed of the random rotations, scales and shifts.
        fonts: font files from matplotlib's data directory, one writer each.
        alphabets: keys of `GLYPH_ALPHABETS` to include.
        use_cache: read and write the cache in `cache_dir()`.
    Returns:
        LabeledData with x uint8 (N, 1, 28, 28), y int64 (N,), classes = the characters, and
        meta["writer"] int64 (N,): the index of the font in `fonts` (meta_names["writer"]: the
        font names).

    Example:
        >>> from siamese import load_glyphs
        >>> data = load_glyphs(
        ...     variants=2,
        ...     fonts=("DejaVuSans.ttf", "DejaVuSerif.ttf"),
        ...     alphabets=("digits",),
        ...     use_cache=False,
        ... )
        >>> tuple(data.x.shape), data.x.dtype, len(data.classes)
        ((40, 1, 28, 28), torch.uint8, 10)
        >>> data.meta_names["writer"], data.meta["writer"][:4].tolist()
        (['DejaVuSans', 'DejaVuSerif'], [0, 0, 1, 1])
    """
    if variants < 1:
        raise ConfigError(f"glyphs: variants must be >= 1, got {variants}")
    unknown = [a for a in alphabets if a not in GLYPH_ALPHABETS]
    if unknown:
        raise ConfigError(
            f"glyphs: unknown alphabet(s) {unknown}; choose from {', '.join(GLYPH_ALPHABETS)}"
        )
    chars = [ch for a in alphabets for ch in GLYPH_ALPHABETS[a]]
    key = json.dumps(
        [
            _FORMAT_VERSION,
            variants,
            seed,
            list(fonts),
            chars,
            matplotlib.__version__,
            torch.__version__,
        ]
    )
    path = cache_dir() / f"glyphs-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"
    cached = load_npz(path) if use_cache else None
    if cached is not None:
        return _to_labeled(cached)
    arrays = _generate(chars, fonts, variants, seed)
    if use_cache:
        save_npz_atomic(path, **arrays)
    return _to_labeled(arrays)


def _generate(
    chars: list[str], fonts: tuple[str, ...], variants: int, seed: int
) -> dict[str, np.ndarray]:
    templates, present = render_templates(chars, fonts)
    keep = ~lookalike_characters(templates, present)
    templates, present = templates[keep], present[keep]
    kept_chars = [ch for ch, k in zip(chars, keep, strict=True) if k]
    class_of, writer_of = np.nonzero(present)  # one row per existing (character, font)
    class_of = np.repeat(class_of, variants)
    writer_of = np.repeat(writer_of, variants)
    g = torch.Generator().manual_seed(seed)
    source = torch.from_numpy(templates[class_of, writer_of])[:, None]
    images = torch.empty(source.shape[0], 1, _CANVAS // 2, _CANVAS // 2, dtype=torch.uint8)
    for start in range(0, source.shape[0], 4096):  # bounded memory
        block = random_affine_batch(source[start : start + 4096], g, 12.0, 0.12, (0.85, 1.1))
        block = torch.nn.functional.avg_pool2d(block, 2)
        images[start : start + 4096] = (block * 255).round().clamp(0, 255).to(torch.uint8)
    return {
        "x": images.numpy(),
        "y": class_of.astype(np.int64),
        "writer": writer_of.astype(np.int64),
        "classes": np.array(kept_chars),
        "fonts": np.array([os.path.splitext(f)[0] for f in fonts]),
    }


def _to_labeled(arrays: dict[str, np.ndarray]) -> LabeledData:
    return LabeledData(
        x=torch.from_numpy(np.ascontiguousarray(arrays["x"])),
        y=torch.from_numpy(arrays["y"].astype(np.int64)),
        classes=[str(c) for c in arrays["classes"]],
        meta={"writer": torch.from_numpy(arrays["writer"].astype(np.int64))},
        meta_names={"writer": [str(f) for f in arrays["fonts"]]},
    )
