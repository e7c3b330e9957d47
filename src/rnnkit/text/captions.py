"""Image-caption data: the standard caption files, images through Pillow, and the prepared
splits that ``rnnkit caption train`` reads.

Caption files a user with real data has (:func:`read_captions`):

- a COCO-style JSON (``captions_train2014.json`` of MS COCO, Lin et al. 2014):
  ``{"images": [{"id", "file_name"}, ...], "annotations": [{"image_id", "caption"}, ...]}``;
- a Flickr8k/Flickr30k token file (Hodosh et al. 2013): one ``NAME#k<TAB>caption`` per line;
  a plain ``NAME<TAB>caption`` TSV is read the same way (several lines per image allowed).

Images (PNG, JPEG, anything Pillow opens) are resized to ``size x size`` and kept as uint8
``(C, size, size)`` arrays, C = 1 (grey) or 3 (RGB) (:func:`load_image`). A
:class:`CaptionSet` holds one split: images ``(N, C, H, W)`` uint8, each image's reference
captions (tokenized, several per image) and, for the synthetic scenes of
:mod:`rnnkit.text.scenes`, the objects in it (label, size word and pixel box). A prepared
folder holds ``SPLIT.npz`` (the images; no pickle) and ``SPLIT.jsonl`` (one line per image:
``{"name", "captions", "objects"}``) for ``train``, ``valid`` and ``test``, and
``info.json``.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> s = CaptionSet(np.zeros((1, 1, 4, 4), np.uint8), [["a 3", "one 3"]], ["x"])
>>> save_split(d, "train", s); load_split(d, "train").captions
[['a 3', 'one 3']]
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.io import RnnkitError, atomic_write, atomic_write_bytes, read_bytes, read_text

Array = np.ndarray
SPLITS = ("train", "valid", "test")

__all__ = [
    "SPLITS",
    "CaptionSet",
    "assign_split",
    "from_caption_file",
    "load_image",
    "load_split",
    "read_captions",
    "save_split",
]


@dataclass
class CaptionSet:
    """One split of captioned images.

    ``images`` (N, C, H, W) uint8; ``captions[i]``: the reference captions of image i (space-
    separated tokens); ``names[i]``: where image i came from; ``objects[i]``: for synthetic
    scenes, ``[{"label", "size", "box": [x0, y0, x1, y1]}, ...]`` (pixels, end exclusive),
    else empty."""

    images: Array
    captions: list[list[str]]
    names: list[str]
    objects: list[list[dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise ValueError(f"images: expected uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{self.images.shape}")  # fmt: skip
        if len(self.captions) != n or len(self.names) != n:
            raise ValueError(f"{n} images but {len(self.captions)} caption lists and "
                             f"{len(self.names)} names")  # fmt: skip
        if not self.objects:
            self.objects = [[] for _ in range(n)]
        if any(not c for c in self.captions):
            raise ValueError("every image needs at least one caption")

    def __len__(self) -> int:
        return len(self.images)


# --- prepared folders ----------------------------------------------------------------------------


def save_split(folder: str | Path, split: str, data: CaptionSet) -> None:
    """Write ``SPLIT.npz`` and ``SPLIT.jsonl`` into ``folder`` (each atomically)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, images=data.images)
    atomic_write_bytes(Path(folder) / f"{split}.npz", buf.getvalue())
    with atomic_write(Path(folder) / f"{split}.jsonl") as f:
        for name, caps, objs in zip(data.names, data.captions, data.objects, strict=True):
            f.write(json.dumps({"name": name, "captions": caps, "objects": objs}) + "\n")


def load_split(folder: str | Path, split: str) -> CaptionSet:
    """Read a split written by :func:`save_split`; every fault is one line naming the file."""
    folder = Path(folder)
    npz, jsonl = folder / f"{split}.npz", folder / f"{split}.jsonl"
    if not npz.exists() or not jsonl.exists():
        raise RnnkitError(f"{folder}: no {split}.npz/{split}.jsonl (make the folder with "
                          "`rnnkit caption prepare`)")  # fmt: skip
    try:
        with np.load(io.BytesIO(read_bytes(npz)), allow_pickle=False) as z:
            images = z["images"]
    except (ValueError, KeyError, OSError, zlib.error, EOFError) as e:
        raise RnnkitError(f"{npz}: not a prepared image array ({e})") from None
    names, captions, objects = [], [], []
    for k, line in enumerate(read_text(jsonl).splitlines(), 1):
        try:
            row = json.loads(line)
            caps = [str(c) for c in row["captions"]]
            names.append(str(row["name"]))
            objects.append(list(row.get("objects") or []))
        except (ValueError, KeyError, TypeError) as e:
            raise RnnkitError(f"{jsonl}:{k}: not a caption record ({e})") from None
        if not caps:
            raise RnnkitError(f"{jsonl}:{k}: no captions")
        captions.append(caps)
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) != len(captions):
        raise RnnkitError(f"{npz}: {images.dtype} {images.shape} images do not fit the "
                          f"{len(captions)} records of {jsonl.name}")  # fmt: skip
    return CaptionSet(images, captions, names, objects)


# --- standard caption files -------------------------------------------------------------------


def read_captions(path: str | Path, encoding: str = "utf-8") -> dict[str, list[str]]:
    """Image file name -> its captions (raw text, file order), from a COCO JSON or a
    Flickr8k-style TSV (see the module doc). Errors name the file and line."""
    path = Path(path)
    text = read_text(path, encoding)
    out: dict[str, list[str]] = {}
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
            names = {img["id"]: str(img["file_name"]) for img in doc["images"]}
            for k, ann in enumerate(doc["annotations"]):
                if ann["image_id"] not in names:
                    raise ValueError(f"annotation {k} names image_id {ann['image_id']}, which "
                                     "is not among the images")  # fmt: skip
                out.setdefault(names[ann["image_id"]], []).append(str(ann["caption"]).strip())
        except (ValueError, KeyError, TypeError) as e:
            raise RnnkitError(f"{path}: not a COCO captions file ({e})") from None
        return out
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise RnnkitError(f"{path}:{k}: expected IMAGE<TAB>caption")
        name, caption = line.split("\t", 1)
        name = name.strip()
        if "#" in name and name.rsplit("#", 1)[1].isdigit():  # Flickr8k's NAME#k
            name = name.rsplit("#", 1)[0]
        if not name or not caption.strip():
            raise RnnkitError(f"{path}:{k}: empty image name or caption")
        out.setdefault(name, []).append(caption.strip())
    if not out:
        raise RnnkitError(f"{path}: no captions")
    return out


def load_image(path: str | Path, size: int, channels: int = 3) -> Array:
    """An image file as uint8 (channels, size, size): converted to grey (1) or RGB (3) and
    resized (bilinear, aspect ratio not kept) by Pillow."""
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"channels: expected 1 or 3, got {channels}")
    try:
        with Image.open(io.BytesIO(read_bytes(path))) as im:
            im = im.convert("L" if channels == 1 else "RGB").resize((size, size),
                                                                     Image.BILINEAR)  # fmt: skip
            a = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise RnnkitError(f"{path}: not an image Pillow can read ({e})") from None
    return a[None] if channels == 1 else a.transpose(2, 0, 1).copy()


def assign_split(name: str, valid: float = 0.1, test: float = 0.1) -> str:
    """A fixed split for an image by its name (CRC-32 of the name): the same on every run.

    >>> [assign_split(n) for n in ("a.jpg", "f.jpg", "g.jpg")]
    ['train', 'valid', 'test']
    """
    u = (zlib.crc32(name.encode("utf-8")) & 0xFFFFFFFF) / 2**32
    return "test" if u < test else "valid" if u < test + valid else "train"


def from_caption_file(
    captions: str | Path, image_dir: str | Path, size: int, channels: int = 3,
    lower: bool = True, encoding: str = "utf-8", splits: Sequence[str] = SPLITS,
) -> dict[str, CaptionSet]:  # fmt: skip
    """Read a caption file and its image folder into the three splits (by
    :func:`assign_split`); captions are tokenized by the 13a rules and lowercased."""
    from rnnkit.text.parallel import tokenize

    table = read_captions(captions, encoding)
    image_dir = Path(image_dir)
    parts: dict[str, tuple[list[Array], list[list[str]], list[str]]] = {
        s: ([], [], []) for s in splits
    }
    for name in sorted(table):
        split = assign_split(name)
        if split not in parts:
            continue
        p = image_dir / name
        if not p.exists():
            raise RnnkitError(f"{captions}: names {name}, which is not in {image_dir}")
        imgs, caps, names = parts[split]
        imgs.append(load_image(p, size, channels))
        caps.append([" ".join(tokenize(c, "13a", lower)) for c in table[name]])
        names.append(name)
    out = {}
    for split, (imgs, caps, names) in parts.items():
        arr = np.stack(imgs) if imgs else np.zeros((0, channels, size, size), np.uint8)
        out[split] = CaptionSet(arr, caps, names)
    return out
