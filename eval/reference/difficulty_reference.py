#!/usr/bin/env python3
"""Reference numbers for `nii-atr eval`'s split by difficulty (CNR bins), on the committed fixtures.

Reads tests/fixtures/coco/<set>.gt.json and <set>.results.json (made by make_reference.py; their
truths carry a `cnr`) and writes tests/fixtures/coco/difficulty_reference.json with, per set and
per bin [lo, hi):
  - COCO AP and AP50 from pycocotools 2.0.10 (stats[0], stats[1]) on a copy of the ground truth
    in which every truth outside the bin (or without a CNR) is a crowd region (`iscrowd = 1`),
    so pycocotools ignores it and the detections it absorbs;
  - the truths in the bin and how many a same-class detection scoring >= 0.5 hits (IoU >= 0.1 or
    centre inside), brute force;
  - the scan-level ROC of the threat scans whose hardest threat (lowest CNR among truths that
    carry one, crowds left out) lies in the bin against every scan without any truth: scan score
    = the scan's highest detection (-inf without one), AUC as the Mann-Whitney statistic with
    average ranks, Pd at each Pfa limit the best Pd over all thresholds whose Pfa stays within it.
Computed without nii-atr's code. Run from the repository root after make_reference.py:
  pip install -r eval/reference/requirements.txt
  python3 eval/reference/difficulty_reference.py
"""

import contextlib
import io
import json
import math
import pathlib
import tempfile

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

FIX = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "coco"
BINS = [0.0, 2.0, 5.0, math.inf]
PFA_LIMITS = [0.005, 0.01, 0.02, 0.03, 0.05]
MAX_DETS = [1, 10, 100]


def in_bin(cnr, lo, hi):
    return cnr is not None and lo <= cnr < hi


def coco_ap(gt, results, lo, hi):
    only = json.loads(json.dumps(gt))
    for a in only["annotations"]:
        if not in_bin(a.get("cnr"), lo, hi):
            a["iscrowd"] = 1
    with tempfile.TemporaryDirectory() as d:
        gt_path, res_path = pathlib.Path(d) / "gt.json", pathlib.Path(d) / "res.json"
        gt_path.write_text(json.dumps(only))
        res_path.write_text(json.dumps(results))
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(str(gt_path))
            ev = COCOeval(coco_gt, coco_gt.loadRes(str(res_path)), "bbox")
            ev.params.maxDets = MAX_DETS
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])


def hits(gt, results, lo, hi, alarm=0.5, min_iou=0.1):
    def iou(d, g):
        w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
        h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
        if w <= 0 or h <= 0:
            return 0.0
        return w * h / (d[2] * d[3] + g[2] * g[3] - w * h)

    def hit(d, g):
        cx, cy = d[0] + d[2] / 2, d[1] + d[3] / 2
        return iou(d, g) >= min_iou or (g[0] <= cx <= g[0] + g[2] and g[1] <= cy <= g[1] + g[3])

    cats = {c["id"] for c in gt["categories"]}
    truths = [a for a in gt["annotations"] if not a.get("iscrowd", 0) and in_bin(a.get("cnr"), lo, hi)]
    dets = [d for d in results if d["score"] >= alarm and d["category_id"] in cats]
    n_hit = sum(1 for g in truths if any(d["image_id"] == g["image_id"] and d["category_id"] == g["category_id"]
                                          and hit(d["bbox"], g["bbox"]) for d in dets))
    return len(truths), n_hit


def scan_roc(gt, results, lo, hi):
    cats = {c["id"] for c in gt["categories"]}
    ids = sorted(i["id"] for i in gt["images"])
    score = {i: -np.inf for i in ids}
    for d in results:
        if d["category_id"] in cats:
            score[d["image_id"]] = max(score[d["image_id"]], d["score"])
    any_truth = {a["image_id"] for a in gt["annotations"]}
    hardest = {}
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0) and a.get("cnr") is not None:
            hardest[a["image_id"]] = min(hardest.get(a["image_id"], math.inf), a["cnr"])
    pos = [score[i] for i in ids if in_bin(hardest.get(i), lo, hi)]
    neg = [score[i] for i in ids if i not in any_truth]
    if not pos or not neg:
        return {"n_scans": len(pos), "auc": None, "pd_at_pfa": []}
    # Mann-Whitney with average ranks.
    allv = sorted(pos + neg)
    rank = {}
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        rank[allv[i]] = (i + j) / 2.0 + 1.0
        i = j + 1
    auc = (sum(rank[s] for s in pos) - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg))
    thresholds = [math.inf] + sorted(set(pos + neg), reverse=True)
    points = [(sum(s >= t for s in pos) / len(pos), sum(s >= t for s in neg) / len(neg)) for t in thresholds]
    points.append((1.0, 1.0))
    pd_at = [max(pd for pd, pfa in points if pfa <= lim) for lim in PFA_LIMITS]
    return {"n_scans": len(pos), "auc": float(auc), "pd_at_pfa": pd_at}


def main():
    out = {"generator": "eval/reference/difficulty_reference.py", "bins": ["inf" if math.isinf(b) else b for b in BINS],
           "pfa_limits": PFA_LIMITS, "max_dets": MAX_DETS, "sets": {}}
    for name in ("mixed", "dense", "ties"):
        gt = json.loads((FIX / f"{name}.gt.json").read_text())
        results = json.loads((FIX / f"{name}.results.json").read_text())
        rows = []
        for lo, hi in zip(BINS, BINS[1:]):
            n_truth, n_hit = hits(gt, results, lo, hi)
            ap, ap50 = coco_ap(gt, results, lo, hi) if n_truth else (None, None)
            rows.append({"n_truth": n_truth, "n_hit": n_hit, "ap": ap, "ap50": ap50, **scan_roc(gt, results, lo, hi)})
            r = rows[-1]
            print(f"{name:6s} [{lo}, {hi}): {n_truth} truths, {n_hit} hit, AP {ap}, AP50 {ap50}, "
                  f"{r['n_scans']} scans, AUC {r['auc']}")
        out["sets"][name] = rows
    (FIX / "difficulty_reference.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
