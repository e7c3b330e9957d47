"""Captioning data: the digit scenes (split by source image, captions true to the picture)
and the caption-file loader (COCO JSON, Flickr8k TSV, PNG/JPEG through Pillow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from rnnkit.io import RnnkitError
from rnnkit.text.captions import (
    from_caption_file,
    load_image,
    load_split,
    read_captions,
    save_split,
)
from rnnkit.text.scenes import digit_scenes


@pytest.fixture(scope="module")
def scenes():
    return digit_scenes({"train": 150, "valid": 40, "test": 40}, seed=3)


def test_no_test_digit_image_is_seen_in_training(scenes):
    used = {s: {o["source"] for objs in scenes[s].objects for o in objs} for s in scenes}
    assert not used["train"] & used["test"]
    assert not used["train"] & used["valid"]
    assert not used["valid"] & used["test"]


def test_scenes_show_the_digits_their_objects_name(scenes):
    """Each box holds scikit-learn's digit image (found by its own index, not through our
    pools) scaled into it, the background elsewhere is empty, and the captions name exactly
    the scene's digits with their sizes."""
    digits = load_digits()
    for img, objs, caps in zip(scenes["test"].images, scenes["test"].objects,
                               scenes["test"].captions, strict=True):  # fmt: skip
        covered = np.zeros(img.shape[1:], bool)
        for o in objs:
            x0, y0, x1, y1 = o["box"]
            assert int(digits.target[o["source"]]) == int(o["label"])
            side = x1 - x0
            assert side == y1 - y0 and (8 <= side <= 11) == (o["size"] == "small")
            idx = np.arange(side) * 8 // side
            want = np.round(digits.images[o["source"]][np.ix_(idx, idx)] / 16 * 255)
            assert np.array_equal(img[0, y0:y1, x0:x1], want.astype(np.uint8))
            covered[y0:y1, x0:x1] = True
        assert img[0][~covered].max(initial=0) == 0
        named = sorted(f"{o['size']} {o['label']}" for o in objs)
        for cap in caps:
            words = cap.split()
            said = sorted(f"{words[k - 1]} {w}" for k, w in enumerate(words) if w.isdigit())
            assert said == named, cap
        assert len(set(caps)) == len(caps) >= 3


def test_relations_agree_with_the_boxes(scenes):
    for objs, caps in zip(scenes["train"].objects, scenes["train"].captions, strict=True):
        if len(objs) != 2:
            continue
        cx = {o["label"]: (o["box"][0] + o["box"][2]) / 2 for o in objs}
        cy = {o["label"]: (o["box"][1] + o["box"][3]) / 2 for o in objs}
        w = caps[0].split()
        a, b = w[2], w[-1]  # "a SIZE A <relation> a SIZE B"
        if "left" in w:
            assert cx[a] < cx[b]
        else:
            assert "above" in w and cy[a] < cy[b]


def test_same_seed_same_scenes(scenes):
    again = digit_scenes({"train": 150, "valid": 40, "test": 40}, seed=3)
    assert np.array_equal(again["valid"].images, scenes["valid"].images)
    assert again["valid"].captions == scenes["valid"].captions


def test_split_round_trip(scenes, tmp_path):
    save_split(tmp_path, "valid", scenes["valid"])
    back = load_split(tmp_path, "valid")
    assert np.array_equal(back.images, scenes["valid"].images)
    assert back.captions == scenes["valid"].captions and back.objects == scenes["valid"].objects
    (tmp_path / "valid.jsonl").write_text("{not json\n")
    with pytest.raises(RnnkitError, match=r"valid.jsonl:1: not a caption record"):
        load_split(tmp_path, "valid")
    with pytest.raises(RnnkitError, match="caption prepare"):
        load_split(tmp_path, "test")


def _pictures(d):
    """Four small pictures: two PNG, two JPEG, of distinct solid colours."""
    names = []
    kinds = [("png", (255, 0, 0)), ("png", (0, 255, 0)), ("jpg", (0, 0, 255)),
             ("jpg", (200, 200, 200))]  # fmt: skip
    for k, (fmt, colour) in enumerate(kinds):
        name = f"img{k}.{fmt}"
        Image.new("RGB", (30 + k, 20), colour).save(d / name)
        names.append(name)
    return names


def test_coco_and_flickr_files(tmp_path):
    names = _pictures(tmp_path)
    coco = {"images": [{"id": 10 + k, "file_name": n} for k, n in enumerate(names)],
            "annotations": [{"image_id": 10 + k, "caption": f"A red square, number {k}."}
                            for k in range(4)] + [{"image_id": 10, "caption": "Red."}]}  # fmt: skip
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    table = read_captions(tmp_path / "captions.json")
    assert table["img0.png"] == ["A red square, number 0.", "Red."]
    tsv = "".join(f"{n}#{j}\tcaption {j} of {n}\n" for n in names for j in range(2))
    (tmp_path / "Flickr8k.token.txt").write_text(tsv)
    assert read_captions(tmp_path / "Flickr8k.token.txt")["img3.jpg"] == [
        "caption 0 of img3.jpg", "caption 1 of img3.jpg"]  # fmt: skip
    sets = from_caption_file(tmp_path / "captions.json", tmp_path, size=16)
    assert sum(len(s) for s in sets.values()) == 4
    every = {n: (s, i) for s in sets.values() for i, n in enumerate(s.names)}
    s, i = every["img0.png"]
    assert s.images.shape[1:] == (3, 16, 16) and s.images.dtype == np.uint8
    assert s.images[i, :, 8, 8].tolist() == [255, 0, 0]
    assert s.captions[i] == ["a red square , number 0 .", "red ."]
    grey = load_image(tmp_path / "img2.jpg", 8, channels=1)
    assert grey.shape == (1, 8, 8) and abs(int(grey[0, 4, 4]) - 29) <= 2  # ITU-R 601 luma


def test_caption_file_errors(tmp_path):
    (tmp_path / "bad.tsv").write_text("img.png caption without a tab\n")
    with pytest.raises(RnnkitError, match=r"bad.tsv:1: expected IMAGE<TAB>caption"):
        read_captions(tmp_path / "bad.tsv")
    (tmp_path / "bad.json").write_text('{"images": [], "annotations": [{"image_id": 1, '
                                       '"caption": "x"}]}')  # fmt: skip
    with pytest.raises(RnnkitError, match="bad.json: not a COCO captions file"):
        read_captions(tmp_path / "bad.json")
    (tmp_path / "ok.tsv").write_text("missing.png\ta caption\n")
    with pytest.raises(RnnkitError, match="missing.png, which is not in"):
        from_caption_file(tmp_path / "ok.tsv", tmp_path, size=8)
    (tmp_path / "fake.png").write_text("not a picture")
    with pytest.raises(RnnkitError, match="fake.png: not an image"):
        load_image(tmp_path / "fake.png", 8)
