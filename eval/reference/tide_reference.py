#!/usr/bin/env python3
"""TIDE (tidecv 1.0.1) error breakdown on the committed COCO fixture sets, stored as reference.

Writes tests/fixtures/coco/tide_reference.json. Predictions of categories the ground truth
does not list are dropped first, as nii-atr does (and pycocotools does) before any metric.
The Data objects are filled as tidecv.datasets.COCO/COCOResult fill them, minus the masks
(box mode only; the fixtures carry no segmentations). tidecv reports AP in percent; the
numbers here are divided by 100 to match nii-atr's fractions.

Run from the repository root after make_reference.py:
  pip install -r eval/reference/requirements.txt
  python3 eval/reference/tide_reference.py
"""

import contextlib
import io
import json
import pathlib

from tidecv import TIDE
from tidecv.data import Data
from tidecv.errors.main_errors import (BackgroundError, BoxError, ClassError, DuplicateError, MissedError,
                                       OtherError)

FIX = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "coco"
NAMES = {ClassError: "cls", BoxError: "loc", OtherError: "both", DuplicateError: "dupe",
         BackgroundError: "bkg", MissedError: "missed"}


def run(name):
    gt_json = json.loads((FIX / f"{name}.gt.json").read_text())
    results = json.loads((FIX / f"{name}.results.json").read_text())
    cats = {c["id"] for c in gt_json["categories"]}
    gt = Data(f"{name}-gt", max_dets=100)
    for image in gt_json["images"]:
        gt.add_image(image["id"], image.get("file_name", str(image["id"])))
    for c in gt_json["categories"]:
        gt.add_class(c["id"], c.get("name", str(c["id"])))
    for ann in gt_json["annotations"]:
        if ann["category_id"] not in cats:
            continue
        if ann.get("iscrowd", 0):
            gt.add_ignore_region(ann["image_id"], ann["category_id"], ann["bbox"], None)
        else:
            gt.add_ground_truth(ann["image_id"], ann["category_id"], ann["bbox"], None)
    preds = Data(f"{name}-pred")
    for det in results:
        if det["category_id"] in cats:
            preds.add_detection(det["image_id"], det["category_id"], det["score"], det["bbox"], None)
    tide = TIDE()
    with contextlib.redirect_stdout(io.StringIO()):
        run = tide.evaluate(gt, preds, mode=TIDE.BOX)
        dap = run.fix_main_errors()
        counts = run.count_errors()
    return {
        "set": name,
        "ap50": run.ap / 100.0,
        "counts": {NAMES[k]: int(v) for k, v in counts.items() if k in NAMES},
        "delta_ap": {NAMES[k]: float(v) / 100.0 for k, v in dap.items() if k in NAMES},
    }


def main():
    cases = [run(name) for name in ("mixed", "dense", "ties")]
    for c in cases:
        print(c["set"], f"AP50={c['ap50']:.4f}", c["counts"])
    out = {"schema_version": 1, "generator": "eval/reference/tide_reference.py", "tidecv": "1.0.1",
           "cases": cases}
    (FIX / "tide_reference.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
