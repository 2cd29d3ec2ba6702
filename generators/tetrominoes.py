"""Tetrominoes (DeepMind multi_object_datasets), byte-exact rendering rules.

Spec: ``specs/datasets.md`` section 4. A 35x35x3 image holds exactly 3 pieces; each piece is four
bevelled 5x5 blocks on its own 5-px lattice, anchored at its bounding-box top-left (integer, anywhere
that keeps the piece inside the image). Pieces never overlap but may touch. Colours are the 6 binary
RGB colours, drawn independently per piece. :func:`render_tetrominoes` renders images and masks from
factors and reproduces the original dataset byte for byte (checked on the IODINE fixture).

Factor naming follows the original: ``x`` = top **row**, ``y`` = left **column** (spec section 4).
"""

from __future__ import annotations

import functools

import numpy as np

from .core import DatasetSpec, Variant, register_dataset

__all__ = ["SHAPE_CODES", "COLORS", "BEVEL", "render_tetrominoes", "sample_tetrominoes", "render"]

BLOCK = 5  # px per block side; the bevel below is defined for exactly this size
MAX_SPAN = 4 * BLOCK  # the largest piece extent (the I piece): 20 px

# The 19 shape codes of spec section 4, rows top to bottom, "#" = block (code 0 = background/empty).
SHAPE_CODES: dict[int, str] = {
    1: "####",
    2: "#/#/#/#",
    3: "###/#..",
    4: "#../###",
    5: "..#/###",
    6: "###/..#",
    7: "##/.#/.#",
    8: ".#/.#/##",
    9: "##/#./#.",
    10: "#./#./##",
    11: "##./.##",
    12: ".##/##.",
    13: ".#/##/#.",
    14: "#./##/.#",
    15: ".#./###",
    16: "###/.#.",
    17: ".#/##/.#",
    18: "#./##/#.",
    19: "##/##",
}
N_SHAPES = len(SHAPE_CODES)

# The 6 binary colours in spec order: red, green, blue, yellow, magenta, cyan.
COLORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.uint8)

# Bevel of one 5x5 block (spec section 4): centre 159, top 255, bottom 63, left 127, right 191,
# each corner the mean of its two edges. Written in every channel whose colour bit is 1.
BEVEL = np.array(
    [
        [191, 255, 255, 255, 223],
        [127, 159, 159, 159, 191],
        [127, 159, 159, 159, 191],
        [127, 159, 159, 159, 191],
        [95, 63, 63, 63, 127],
    ],
    dtype=np.uint8,
)


def _build_patterns() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per code: block mask [20,20] bool, pixel size (h, w), and the 100 block pixels of the piece as
    (row offset, column offset, bevel intensity) triples, each [20, 100] (row 0 = empty code)."""
    mask = np.zeros((N_SHAPES + 1, MAX_SPAN, MAX_SPAN), bool)
    value = np.zeros((N_SHAPES + 1, MAX_SPAN, MAX_SPAN), np.uint8)
    size = np.zeros((N_SHAPES + 1, 2), np.int64)
    for code, art in SHAPE_CODES.items():
        rows = art.split("/")
        size[code] = (BLOCK * len(rows), BLOCK * len(rows[0]))
        for i, row in enumerate(rows):
            for j, ch in enumerate(row):
                if ch == "#":
                    value[code, BLOCK * i : BLOCK * (i + 1), BLOCK * j : BLOCK * (j + 1)] = BEVEL
                    mask[code, BLOCK * i : BLOCK * (i + 1), BLOCK * j : BLOCK * (j + 1)] = True
    npix = 4 * BLOCK * BLOCK  # every tetromino covers exactly 4 blocks
    r_off = np.zeros((N_SHAPES + 1, npix), np.int64)
    c_off = np.zeros((N_SHAPES + 1, npix), np.int64)
    val = np.zeros((N_SHAPES + 1, npix), np.uint8)
    for code in SHAPE_CODES:
        r_off[code], c_off[code] = np.nonzero(mask[code])
        val[code] = value[code][mask[code]]
    return mask, size, r_off, c_off, val


PATTERN_MASK, PATTERN_SIZE, _PIX_ROW, _PIX_COL, _PIX_VAL = _build_patterns()
_SIZES = [tuple(int(v) for v in hw) for hw in PATTERN_SIZE]  # Python ints for the sampler's hot loop


@functools.lru_cache(maxsize=8)
def _pattern_bits(image_size: int) -> tuple[int, ...]:
    """Each code's pixels as a Python-int bit set (bit r*S + c), for O(1) overlap tests."""
    bits = [0]
    for code in SHAPE_CODES:
        b = 0
        for r, c in zip(_PIX_ROW[code], _PIX_COL[code]):
            b |= 1 << int(r * image_size + c)
        bits.append(b)
    return tuple(bits)


def _as_int_array(a, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        # the original stores factors as float32; accept them when they hold whole numbers
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold whole numbers")
    return arr.astype(np.int64)


def render_tetrominoes(x_rows, y_cols, shapes, colors, image_size: int = 35) -> tuple[np.ndarray, np.ndarray]:
    """Render images and masks from piece factors.

    ``x_rows``, ``y_cols``, ``shapes``: ``[n, K]`` (top row, left column, code 0..19; 0 = empty slot,
    skipped); ``colors``: ``[n, K, 3]`` binary RGB. Returns ``image`` uint8 ``[n,S,S,3]`` and ``mask``
    uint8 ``[n,S,S]`` where piece k has id k+1 (0 = background). Overlapping pieces (which the
    sampler never produces) are drawn in slot order, later on top.
    """
    shp = _as_int_array(shapes, "shapes", 2)
    xr = _as_int_array(x_rows, "x_rows", 2)
    yc = _as_int_array(y_cols, "y_cols", 2)
    col = _as_int_array(colors, "colors", 3)
    n, k_max = shp.shape
    if xr.shape != (n, k_max) or yc.shape != (n, k_max):
        raise ValueError(f"x_rows {xr.shape} and y_cols {yc.shape} must have the shape of shapes {shp.shape}")
    if col.shape != (n, k_max, 3):
        raise ValueError(f"colors must have shape {(n, k_max, 3)}, got {col.shape}")
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if k_max > 255:
        raise ValueError(f"at most 255 pieces per image fit a uint8 mask, got {k_max}")
    if shp.min(initial=0) < 0 or shp.max(initial=0) > N_SHAPES:
        raise ValueError(f"shapes must be codes 0..{N_SHAPES} (0 = empty), got range [{shp.min()}, {shp.max()}]")
    if not np.isin(col, (0, 1)).all():
        raise ValueError("colors must be binary (0 or 1 per channel)")
    active = shp > 0
    h, w = PATTERN_SIZE[shp, 0], PATTERN_SIZE[shp, 1]
    if np.any(active & ((xr < 0) | (xr + h > image_size))):
        raise ValueError(f"x_rows put a piece outside the {image_size}-px image (valid: 0..{image_size}-height)")
    if np.any(active & ((yc < 0) | (yc + w > image_size))):
        raise ValueError(f"y_cols put a piece outside the {image_size}-px image (valid: 0..{image_size}-width)")

    # Each piece is exactly 100 pixels: write them for all samples of a slot at once through flat
    # indices into the mask and image (later slots overwrite earlier ones). Scattering only the
    # foreground is much cheaper than a dense per-pixel colour lookup. Spec section 4: the bevel
    # goes into every channel whose colour bit is 1, 0 into the others.
    area = image_size * image_size
    msk = np.zeros(n * area, np.uint8)
    img = np.zeros(n * area * 3, np.uint8)
    for k in range(k_max):
        sel = np.flatnonzero(active[:, k])
        if sel.size == 0:
            continue
        code = shp[sel, k]
        base = sel * area + xr[sel, k] * image_size + yc[sel, k]
        lin = base[:, None] + _PIX_ROW[code] * image_size + _PIX_COL[code]
        msk[lin] = k + 1
        val = _PIX_VAL[code]
        bits = col[sel, k].astype(np.uint8)
        for ch in range(3):
            img[3 * lin + ch] = val * bits[:, ch : ch + 1]
    return img.reshape(n, image_size, image_size, 3), msk.reshape(n, image_size, image_size)


def sample_tetrominoes(
    rng: np.random.Generator, image_size: int = 35, n_pieces: int = 3, max_tries: int = 1000
) -> tuple[list[int], list[int], list[int], list[int]]:
    """Draw one image's factors: lists (x_rows, y_cols, shapes, colour indices into COLORS).

    Spec section 4, sampling: per piece in order, a code uniform in 1..19, a colour uniform over
    the 6, a top-left uniform over the valid positions; a piece that overlaps an earlier one is
    redrawn whole (touching is allowed: overlap is tested per pixel).
    """
    bits = _pattern_bits(image_size)
    occ = 0  # occupied pixels as a bit set (bit r*S + c)
    xs = [0] * n_pieces
    ys = [0] * n_pieces
    codes = [0] * n_pieces
    cols = [0] * n_pieces
    # One try uses 4 uniforms (code, colour, row, column), mapped to integers by floor(u * m), which
    # is uniform up to a bias below 2**-45. Uniforms are drawn 8 tries at a time: a numpy call per
    # scalar would cost more than the rest of the sampling together.
    draws = rng.random((8, 4)).tolist()
    used = 0
    n_col = len(COLORS)
    for k in range(n_pieces):
        for _ in range(max_tries):
            if used == len(draws):
                draws, used = rng.random((8, 4)).tolist(), 0
            u_code, u_col, u_row, u_c = draws[used]
            used += 1
            code = 1 + int(u_code * N_SHAPES)
            h, w = _SIZES[code]
            if h > image_size or w > image_size:
                raise ValueError(f"image_size {image_size} is too small for a {h}x{w} px piece")
            r = int(u_row * (image_size - h + 1))
            q = int(u_c * (image_size - w + 1))
            piece = bits[code] << (r * image_size + q)
            if not occ & piece:  # per-pixel overlap test; touching pieces are fine
                occ |= piece
                xs[k], ys[k], codes[k], cols[k] = r, q, code, int(u_col * n_col)
                break
        else:
            raise RuntimeError(
                f"could not place piece {k + 1} without overlap in {max_tries} tries "
                f"(image_size={image_size}, n_pieces={n_pieces})"
            )
    return xs, ys, codes, cols


def _check_config(config: dict) -> tuple[int, int, int]:
    try:
        s, k, t = int(config["image_size"]), int(config["n_pieces"]), int(config["max_tries"])
    except KeyError as e:
        raise ValueError(f"tetrominoes config lacks {e.args[0]!r}") from e
    if s < MAX_SPAN:
        raise ValueError(f"config image_size must be >= {MAX_SPAN} (the I piece), got {s}")
    if not 1 <= k <= 255:
        raise ValueError(f"config n_pieces must be in 1..255, got {k}")
    if t < 1:
        raise ValueError(f"config max_tries must be >= 1, got {t}")
    return s, k, t


def render(config: dict, seeds: np.ndarray) -> dict:
    """Render one batch: sample i's draws come only from ``default_rng(seeds[i])``."""
    size, k_max, tries = _check_config(config)
    n = len(seeds)
    drawn = [
        sample_tetrominoes(np.random.default_rng(int(s)), size, k_max, tries)
        for s in np.asarray(seeds, dtype=np.uint64)
    ]
    factors = np.array(drawn, dtype=np.int64).reshape(n, 4, k_max)
    xs, ys, codes, cidx = factors[:, 0], factors[:, 1], factors[:, 2], factors[:, 3]
    color = COLORS[cidx]
    img, msk = render_tetrominoes(xs, ys, codes, color, image_size=size)
    # visible pixels per id from the mask itself (always 4*25: pieces never overlap)
    flat = msk.reshape(n, -1)
    counts = np.stack([np.count_nonzero(flat == k + 1, axis=1) for k in range(k_max)], axis=1)
    h, w = PATTERN_SIZE[codes, 0], PATTERN_SIZE[codes, 1]
    return {
        "video": img[:, None],
        "masks": msk[:, None],
        "objects/n_objects": np.full(n, k_max, np.int16),
        "objects/x": xs.astype(np.int16),  # top row (original naming)
        "objects/y": ys.astype(np.int16),  # left column
        "objects/shape": codes.astype(np.int16),
        "objects/color": color,  # binary RGB, uint8 0/1
        "objects/visibility": (counts > 0).astype(np.uint8),
        # bounding box in pixel edges, half-open: rows [r0, r1), columns [c0, c1)
        "objects/bbox": np.stack([xs, ys, xs + h, ys + w], axis=-1).astype(np.int16),
        "objects/pixels": counts.astype(np.int32),
    }


SPEC = register_dataset(
    DatasetSpec(
        name="tetrominoes",
        version="1.0.0",
        kind="image",
        base_config={"image_size": 35, "n_pieces": 3, "max_tries": 1000},
        variants={"default": Variant(description="3 non-overlapping bevelled tetrominoes, 6 binary colours")},
        default_variant="default",
        sizes={
            "paper": {"train": 60000, "val": 1000, "test": 10000},
            "quick": {"train": 5000, "val": 500, "test": 1000},
            "smoke": {"train": 64, "val": 16, "test": 32},
        },
        render=render,
        views={"protocol320": ("test", 320)},
        description="Tetrominoes (DeepMind multi_object_datasets), byte-exact rendering; spec datasets.md §4",
        chunk=2048,
    )
)
