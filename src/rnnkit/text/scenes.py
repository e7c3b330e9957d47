"""Captioning data built from real handwriting: scenes of digits with captions that say
which digits, how many, how large, where, and how they lie to each other.

No photo-caption corpus can be downloaded here, so the task is made from the 1,797 scanned
handwritten digits that scikit-learn ships in its wheel (``sklearn.datasets.load_digits``:
8 x 8 images, 16 grey levels, from the UCI "Optical Recognition of Handwritten Digits" set,
Alpaydin & Kaynak 1998). The digit images are first split 60/20/20 into train, validation
and test pools, and each split's scenes draw only from its pool: no test digit image is ever
seen in training.

A scene is a ``canvas x canvas`` grey picture (40 x 40 by default) with 1, 2 or 3 digits of
different classes, each scaled (nearest neighbour) to a random "small" (8-11 px) or "large"
(15-18 px) square, placed at a random position without overlap. Its captions are generated
from the objects, several phrasings per image (the multiple references of BLEU)::

    1 digit:   a large 3 at the top left | one large 3 at the top left |
               there is a large 3 at the top left
    2 digits:  a large 3 to the left of a small 7 | a small 7 to the right of a large 3 |
               two digits : a large 3 and a small 7 |
               a large 3 at the top left and a small 7 at the bottom right
               (above / below when the two lie more apart vertically than horizontally)
    3 digits:  three digits : a large 3 , a small 7 and a small 1 |
               a large 3 , a small 7 and a small 1 from left to right |
               a small 1 , a small 7 and a large 3 from right to left |
               a large 3 at the top left , a small 7 at the bottom and a small 1 at the right

Places are the thirds of the canvas that hold the digit's centre ("at the top left", "at the
top", "in the middle", ...). Every object keeps its box, so a captioner's attention can be
checked against the digit it names (the classes in a scene differ, so a digit word names one
object).

>>> import numpy as np
>>> objs = [{"label": "3", "size": "large", "box": [2, 3, 18, 19]},
...         {"label": "7", "size": "small", "box": [28, 25, 37, 34]}]
>>> describe(objs, 40)[:2]
['a large 3 to the left of a small 7', 'a small 7 to the right of a large 3']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError
from rnnkit.text.captions import SPLITS, CaptionSet

Array = np.ndarray

SMALL, LARGE = (8, 11), (15, 18)  # side lengths in pixels, inclusive
COUNTS = (1, 2, 3)
COUNT_P = (0.2, 0.4, 0.4)
NUMBERS = {1: "one", 2: "two", 3: "three"}

__all__ = ["describe", "digit_pools", "digit_scenes", "make_scene", "place_words"]


def digit_pools(seed: int = 0) -> tuple[Array, Array, dict[str, Array]]:
    """scikit-learn's digits: images (1797, 8, 8) in [0, 1], labels (1797,), and the indices
    of each split's pool (60/20/20, a permutation drawn from ``seed``)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise RnnkitError("the digit scenes need scikit-learn (pip install 'rnnkit[caption]')"
                          ) from None  # fmt: skip
    d = load_digits()
    images = d.images.astype(np.float64) / 16.0
    labels = d.target.astype(np.int64)
    perm = np.random.default_rng([seed, 25]).permutation(len(labels))
    a, b = int(0.6 * len(perm)), int(0.8 * len(perm))
    return images, labels, {"train": perm[:a], "valid": perm[a:b], "test": perm[b:]}


def _scaled(img: Array, side: int) -> Array:
    """An 8 x 8 digit scaled to side x side by nearest neighbour."""
    idx = np.arange(side) * img.shape[0] // side
    return img[np.ix_(idx, idx)]


def make_scene(
    rng: np.random.Generator, images: Array, labels: Array, pool: Array, canvas: int = 40
) -> tuple[Array, list[dict[str, Any]]]:
    """One scene from the digit images ``pool`` indexes: (image (1, canvas, canvas) uint8,
    objects)."""
    n = int(rng.choice(COUNTS, p=COUNT_P))
    classes = rng.choice(10, size=n, replace=False)
    while True:
        sizes = ["large" if rng.random() < 0.5 else "small" for _ in range(n)]
        sides = [int(rng.integers(*(LARGE if s == "large" else SMALL), endpoint=True))
                 for s in sizes]  # fmt: skip
        boxes: list[list[int]] = []
        for side in sides:
            for _ in range(100):
                x0, y0 = (int(v) for v in rng.integers(0, canvas - side, size=2, endpoint=True))
                box = [x0, y0, x0 + side, y0 + side]
                # at least one pixel of background between two digits
                if all(box[0] > b[2] or b[0] > box[2] or box[1] > b[3] or b[1] > box[3]
                       for b in boxes):  # fmt: skip
                    boxes.append(box)
                    break
            else:
                break
        if len(boxes) == n:
            break
    img = np.zeros((canvas, canvas))
    objects = []
    for c, size, box in zip(classes, sizes, boxes, strict=True):
        choices = pool[labels[pool] == c]
        src = int(rng.choice(choices))
        x0, y0, x1, y1 = box
        region = img[y0:y1, x0:x1]
        np.maximum(region, _scaled(images[src], x1 - x0), out=region)
        objects.append({"label": str(int(c)), "size": size, "box": box, "source": src})
    return np.round(img * 255).astype(np.uint8)[None], objects


def place_words(box: Sequence[int], canvas: int) -> str:
    """Where a box's centre lies, in thirds of the canvas: "at the top left", "in the middle"...

    >>> place_words([0, 0, 8, 8], 40), place_words([16, 16, 24, 24], 40)
    ('at the top left', 'in the middle')
    """
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    col = ("left", "", "right")[min(int(3 * cx / canvas), 2)]
    row = ("top", "", "bottom")[min(int(3 * cy / canvas), 2)]
    words = " ".join(w for w in (row, col) if w)
    return f"at the {words}" if words else "in the middle"


def describe(objects: list[dict[str, Any]], canvas: int) -> list[str]:
    """The captions of a scene (see the module doc), in a fixed order."""

    def name(o: dict[str, Any]) -> str:
        return f"{o['size']} {o['label']}"

    def centre(o: dict[str, Any], axis: int) -> float:
        return (o["box"][axis] + o["box"][axis + 2]) / 2

    objs = sorted(objects, key=lambda o: centre(o, 0))  # left to right
    where = [place_words(o["box"], canvas) for o in objs]
    if len(objs) == 1:
        o, w = objs[0], where[0]
        return [f"a {name(o)} {w}", f"one {name(o)} {w}", f"there is a {name(o)} {w}"]
    if len(objs) == 2:
        a, b = objs
        if abs(centre(b, 1) - centre(a, 1)) > centre(b, 0) - centre(a, 0):
            a, b = sorted(objs, key=lambda o: centre(o, 1))  # top to bottom
            there, back = "above", "below"
        else:
            there, back = "to the left of", "to the right of"
        wa, wb = (place_words(o["box"], canvas) for o in (a, b))
        return [f"a {name(a)} {there} a {name(b)}", f"a {name(b)} {back} a {name(a)}",
                f"two digits : a {name(a)} and a {name(b)}",
                f"a {name(a)} {wa} and a {name(b)} {wb}"]  # fmt: skip
    a, b, c = objs
    return [f"three digits : a {name(a)} , a {name(b)} and a {name(c)}",
            f"a {name(a)} , a {name(b)} and a {name(c)} from left to right",
            f"a {name(c)} , a {name(b)} and a {name(a)} from right to left",
            f"a {name(a)} {where[0]} , a {name(b)} {where[1]} and a {name(c)} "
            f"{where[2]}"]  # fmt: skip


def digit_scenes(sizes: dict[str, int], seed: int = 0, canvas: int = 40) -> dict[str, CaptionSet]:
    """``sizes[split]`` scenes for each split, each split from its own digit pool (see
    :func:`digit_pools`); the same ``seed`` gives the same scenes.

    >>> s = digit_scenes({"train": 2, "valid": 1, "test": 1}, seed=0)
    >>> s["train"].images.shape, len(s["test"].captions[0]) >= 3
    ((2, 1, 40, 40), True)
    """
    if canvas < 2 * LARGE[1] + 2:
        raise RnnkitError(f"--canvas: must be at least {2 * LARGE[1] + 2} pixels, got {canvas}")
    images, labels, pools = digit_pools(seed)
    out = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, k])
        imgs, caps, names, objs = [], [], [], []
        for i in range(int(sizes.get(split, 0))):
            img, objects = make_scene(rng, images, labels, pools[split], canvas)
            imgs.append(img)
            caps.append(describe(objects, canvas))
            names.append(f"{split}-{i:05d}")
            objs.append(objects)
        arr = np.stack(imgs) if imgs else np.zeros((0, 1, canvas, canvas), np.uint8)
        out[split] = CaptionSet(arr, caps, names, objs)
    return out
