#!/usr/bin/env python3
"""Build the COCO fixture sets and the pycocotools reference numbers nii-atr is tested against.

Writes, deterministically (fixed seeds), under tests/fixtures/coco/:
  <set>.gt.json        COCO ground truth (images with width/height, categories, annotations
                       with bbox, area, iscrowd and a `cnr` attribute)
  <set>.results.json   COCO detection results (image_id, category_id, bbox, score)
  reference.json       every number pycocotools 2.0.10 gives for each (set, maxDets) case

Run from the repository root:
  pip install -r eval/reference/requirements.txt
  python3 eval/reference/make_reference.py
"""

import contextlib
import io
import json
import pathlib

import numpy as np
import pycocotools
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "coco"
SCHEMA_VERSION = 1


def r1(x):
    """One decimal: keeps the files small and every coordinate exactly representable in text."""
    return float(round(float(x), 1))


def jitter_box(rng, box, scale):
    x, y, w, h = box
    dx, dy = rng.normal(0.0, scale * w), rng.normal(0.0, scale * h)
    sw, sh = np.exp(rng.normal(0.0, scale)), np.exp(rng.normal(0.0, scale))
    return [r1(x + dx), r1(y + dy), r1(max(w * sw, 0.5)), r1(max(h * sh, 0.5))]


def random_box(rng, width, height, min_side=4.0, max_side=320.0):
    w = float(np.exp(rng.uniform(np.log(min_side), np.log(max_side))))
    h = float(w * np.exp(rng.normal(0.0, 0.4)))
    w, h = min(w, width - 1), min(h, height - 1)
    x = rng.uniform(0, width - w)
    y = rng.uniform(0, height - h)
    return [r1(x), r1(y), r1(max(w, 1.0)), r1(max(h, 1.0))]


def make_mixed(seed=20261123):
    """Several hundred images, many categories and every awkward case pycocotools meets."""
    rng = np.random.default_rng(seed)
    n_images = 420
    gt_cats = [1, 2, 3, 5, 7, 8, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53]
    no_gt_cats = [60, 61]  # listed categories that no annotation uses
    no_det_cats = {41, 43}  # categories with ground truth but never predicted
    unknown_cat = 999  # predicted category that the GT does not list: pycocotools skips it
    categories = [{"id": c, "name": f"class_{c}", "supercategory": "threat"} for c in gt_cats + no_gt_cats]
    rng.shuffle(categories)

    image_ids = rng.choice(np.arange(1, 200_000), size=n_images, replace=False).tolist()
    images, annotations, results = [], [], []
    ann_id = 0  # one ground-truth id is 0: pycocotools then counts its match as a false positive
    for i, img_id in enumerate(image_ids):
        width, height = int(rng.integers(256, 1400)), int(rng.integers(256, 1000))
        images.append({"id": int(img_id), "width": width, "height": height, "file_name": f"scan_{img_id:06d}.png"})
        kind = rng.random()
        n_gt = 0 if kind < 0.12 else int(rng.poisson(3.0)) + (1 if kind > 0.5 else 0)
        gts = []
        for _ in range(n_gt):
            cat = int(rng.choice(gt_cats))
            crowd = 1 if rng.random() < 0.06 else 0
            box = random_box(rng, width, height, 8.0 if crowd else 3.0, 500.0 if crowd else 300.0)
            # The GT area is a segmentation area, not w*h: pycocotools uses it for the area ranges.
            area = round(box[2] * box[3] * float(rng.uniform(0.55, 1.0)), 2)
            ann = {"id": ann_id, "image_id": int(img_id), "category_id": cat, "bbox": box, "area": area,
                   "iscrowd": crowd, "cnr": round(float(rng.uniform(0.3, 9.0)), 2)}
            ann_id += 1 if ann_id > 0 else int(rng.integers(1, 4))
            annotations.append(ann)
            gts.append(ann)
        for g in gts:
            if g["category_id"] in no_det_cats:
                continue
            n_hits = 0 if rng.random() < 0.18 else 1 + (1 if rng.random() < 0.2 else 0)
            if g["iscrowd"]:
                n_hits = int(rng.integers(0, 5))
            for _ in range(n_hits):
                if g["iscrowd"]:
                    gx, gy, gw, gh = g["bbox"]
                    sw, sh = gw * rng.uniform(0.1, 0.5), gh * rng.uniform(0.1, 0.5)
                    box = [r1(gx + rng.uniform(0, gw - sw)), r1(gy + rng.uniform(0, gh - sh)), r1(sw), r1(sh)]
                else:
                    box = jitter_box(rng, g["bbox"], float(rng.choice([0.02, 0.05, 0.1, 0.25])))
                cat = g["category_id"]
                if rng.random() < 0.12:
                    cat = int(rng.choice(gt_cats + no_gt_cats[:1]))
                results.append({"image_id": int(img_id), "category_id": cat, "bbox": box,
                                "score": float(np.floor(rng.random() * 20) / 20)})
        n_bkg = int(rng.poisson(2.0 if n_gt else 1.0))
        for _ in range(n_bkg):
            cat = int(rng.choice(gt_cats + no_gt_cats[:1]))
            if cat in no_det_cats:
                continue
            results.append({"image_id": int(img_id), "category_id": cat,
                            "bbox": random_box(rng, width, height),
                            "score": float(np.floor(rng.random() * 20) / 20)})
        if i % 37 == 0:
            results.append({"image_id": int(img_id), "category_id": unknown_cat,
                            "bbox": random_box(rng, width, height), "score": 0.5})
    # A zero-width prediction: legal for pycocotools (IoU 0 with everything).
    results.append({"image_id": int(image_ids[3]), "category_id": gt_cats[0], "bbox": [10.0, 10.0, 0.0, 5.0],
                    "score": 0.95})
    order = rng.permutation(len(results))
    results = [results[j] for j in order]
    rng.shuffle(images)
    gt = {"info": {"description": "nii-atr mixed fixture", "schema": "coco"}, "images": images,
          "annotations": annotations, "categories": categories}
    return gt, results


def make_dense(seed=7):
    """Few categories, many predictions per image: maxDets truncation and deep score ties."""
    rng = np.random.default_rng(seed)
    cats = [1, 2, 3, 4]
    images, annotations, results = [], [], []
    ann_id = 1
    for img_id in range(1, 31):
        width, height = 1024, 768
        images.append({"id": img_id, "width": width, "height": height, "file_name": f"dense_{img_id:03d}.png"})
        gts = []
        for _ in range(int(rng.integers(0, 40))):
            box = random_box(rng, width, height, 4.0, 160.0)
            ann = {"id": ann_id, "image_id": img_id, "category_id": int(rng.choice(cats)), "bbox": box,
                   "area": round(box[2] * box[3], 2), "iscrowd": 0, "cnr": round(float(rng.uniform(0.3, 9.0)), 2)}
            ann_id += 1
            annotations.append(ann)
            gts.append(ann)
        n_det = int(rng.integers(120, 300))
        for _ in range(n_det):
            if gts and rng.random() < 0.5:
                g = gts[int(rng.integers(0, len(gts)))]
                box = jitter_box(rng, g["bbox"], float(rng.choice([0.05, 0.15, 0.3])))
                cat = g["category_id"] if rng.random() < 0.9 else int(rng.choice(cats))
            else:
                box = random_box(rng, width, height, 4.0, 160.0)
                cat = int(rng.choice(cats, p=[0.7, 0.1, 0.1, 0.1]))
            results.append({"image_id": img_id, "category_id": cat, "bbox": box,
                            "score": float(round(float(rng.choice([0.9, 0.5, 0.25]) if rng.random() < 0.3
                                                       else rng.random()), 3))})
    gt = {"info": {"description": "nii-atr dense fixture"}, "images": images, "annotations": annotations,
          "categories": [{"id": c, "name": f"dense_{c}"} for c in cats]}
    return gt, results


def make_ties():
    """Hand-made: equal scores across and within images, crowd regions, IoU exactly 0.5."""
    images = [{"id": i, "width": 200, "height": 200} for i in (5, 1, 3, 2, 4)]
    a = lambda i, img, cat, bbox, crowd=0, area=None: {
        "id": i, "image_id": img, "category_id": cat, "bbox": bbox, "iscrowd": crowd,
        "area": area if area is not None else bbox[2] * bbox[3], "cnr": 2.0}
    annotations = [
        a(1, 1, 1, [0, 0, 10, 10]),
        a(2, 1, 1, [50, 50, 40, 40]),
        a(3, 1, 1, [0, 100, 100, 100], crowd=1),
        a(4, 2, 1, [10, 10, 20, 20]),
        a(5, 2, 2, [10, 10, 20, 20]),
        a(6, 3, 2, [100, 100, 50, 50]),
        a(7, 3, 2, [100, 100, 50, 50]),  # two identical GT boxes
        a(8, 5, 1, [30, 30, 40, 40], area=900.0),
    ]
    d = lambda img, cat, bbox, s: {"image_id": img, "category_id": cat, "bbox": bbox, "score": s}
    results = [
        d(1, 1, [0, 0, 10, 10], 0.8),
        d(1, 1, [0, 0, 10, 10], 0.8),  # duplicate with the same score: file order decides
        d(1, 1, [0, 0, 10, 20], 0.8),  # IoU exactly 0.5 with GT 1
        d(1, 1, [10, 110, 20, 20], 0.7),  # inside the crowd region
        d(1, 1, [52, 52, 40, 40], 0.7),
        d(2, 1, [10, 10, 20, 20], 0.7),
        d(2, 2, [12, 12, 20, 20], 0.8),
        d(3, 2, [100, 100, 50, 50], 0.6),
        d(3, 2, [101, 101, 50, 50], 0.6),
        d(3, 2, [0, 0, 5, 5], 0.6),
        d(4, 1, [0, 0, 30, 30], 0.9),  # image without GT
        d(5, 1, [30, 30, 40, 40], 0.7),
        d(5, 1, [30, 30, 40, 40], 0.7),
    ]
    gt = {"info": {"description": "nii-atr ties fixture"}, "images": images, "annotations": annotations,
          "categories": [{"id": 1, "name": "knife"}, {"id": 2, "name": "gun"}, {"id": 3, "name": "unused"}]}
    return gt, results


def run_cocoeval(gt_path, res_path, max_dets):
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(str(res_path))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    p = ev.eval["params"]
    precision, recall = ev.eval["precision"], ev.eval["recall"]
    T, R, K, A, M = precision.shape

    def mean_valid(s):
        v = s[s > -1]
        return -1.0 if v.size == 0 else float(np.mean(v))

    per_category = []
    for k, cat_id in enumerate(p.catIds):
        # As pycocotools' summarize does for one category: area 'all', largest maxDets.
        per_category.append({
            "category_id": int(cat_id),
            "ap": mean_valid(precision[:, :, k, 0, M - 1]),
            "ap50": mean_valid(precision[0, :, k, 0, M - 1]),
            "ap75": mean_valid(precision[5, :, k, 0, M - 1]),
            "ar": mean_valid(recall[:, k, 0, M - 1]),
            "pr_curve_iou50": precision[0, :, k, 0, M - 1].tolist(),
        })
    precision_mean_over_recall = [[[[mean_valid(precision[t, :, k, a, m]) for m in range(M)] for a in range(A)]
                                   for k in range(K)] for t in range(T)]
    return {
        "max_dets": [int(m) for m in p.maxDets],
        "iou_thrs": p.iouThrs.tolist(),
        "rec_thrs": p.recThrs.tolist(),
        "cat_ids": [int(c) for c in p.catIds],
        "img_ids": len(p.imgIds),
        "stats": [float(s) for s in ev.stats],
        "precision_mean_over_recall": precision_mean_over_recall,
        "recall": recall.tolist(),
        "per_category": per_category,
    }


def atr_reference(gt, results, alarm_threshold=0.5, min_iou=0.1):
    """Scan-level ROC numbers and lenient per-class Pd, computed independently of nii-atr.

    Scan score = max detection score (-inf without detections); a scan is positive when it has
    any annotation. AUC is the Mann-Whitney statistic with average ranks for ties. Pd at a Pfa
    limit is the best Pd over all thresholds (every distinct score, plus alarm-on-nothing and
    alarm-on-everything) whose Pfa stays within the limit. Only predictions of listed
    categories count, as in pycocotools.
    """
    cats = {c["id"] for c in gt["categories"]}
    ids = sorted(i["id"] for i in gt["images"])
    score = {i: -np.inf for i in ids}
    for d in results:
        if d["category_id"] in cats:
            score[d["image_id"]] = max(score[d["image_id"]], d["score"])
    positive = {i: False for i in ids}
    for a in gt["annotations"]:
        positive[a["image_id"]] = True
    s = np.array([score[i] for i in ids])
    y = np.array([positive[i] for i in ids])
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    auc = (ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    thresholds = [np.inf] + sorted(set(s.tolist()), reverse=True)
    points = [(float(((s >= t) & y).sum()) / n_pos, float(((s >= t) & ~y).sum()) / n_neg) for t in thresholds]
    points.append((1.0, 1.0))
    pd_at = {str(lim): max(pd for pd, pfa in points if pfa <= lim) for lim in (0.01, 0.05)}
    pfa_at = {str(lim): min(pfa for pd, pfa in points if pd >= lim) for lim in (0.9, 0.95)}

    def iou(d, g):
        w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
        h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
        if w <= 0 or h <= 0:
            return 0.0
        return w * h / (d[2] * d[3] + g[2] * g[3] - w * h)

    def hit(d, g):
        cx, cy = d[0] + d[2] / 2, d[1] + d[3] / 2
        return iou(d, g) >= min_iou or (g[0] <= cx <= g[0] + g[2] and g[1] <= cy <= g[1] + g[3])

    per_class = {}
    for c in sorted(cats):
        truths = [a for a in gt["annotations"] if a["category_id"] == c and not a.get("iscrowd", 0)]
        dets = [d for d in results if d["category_id"] == c and d["score"] >= alarm_threshold]
        n_hit = sum(1 for g in truths if any(d["image_id"] == g["image_id"] and hit(d["bbox"], g["bbox"])
                                             for d in dets))
        per_class[str(c)] = {"n_truth": len(truths), "n_hit": n_hit}
    # FROC: descending score (stable); a hit on an unfound truth of the class is a TP (highest
    # IoU first), a hit only on found truths or a crowd region of the class is not counted.
    truths_by_image = {}
    for a in gt["annotations"]:
        truths_by_image.setdefault(a["image_id"], []).append(a)
    n_truth = sum(1 for a in gt["annotations"] if not a.get("iscrowd", 0))
    found, tp, fp, points = set(), 0, 0, [(0.0, 0.0)]
    dets = sorted((d for d in results if d["category_id"] in cats), key=lambda d: -d["score"])
    for k, d in enumerate(dets):
        cands = [g for g in truths_by_image.get(d["image_id"], [])
                 if g["category_id"] == d["category_id"] and hit(d["bbox"], g["bbox"])]
        free = [g for g in cands if not g.get("iscrowd", 0) and g["id"] not in found]
        if free:
            best = max(free, key=lambda g: iou(d["bbox"], g["bbox"]))  # first of equal IoUs
            found.add(best["id"])
            tp += 1
        elif not cands:
            fp += 1
        if k + 1 == len(dets) or dets[k + 1]["score"] != d["score"]:
            points.append((fp / len(ids), tp / n_truth))
    rates = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    froc_at = [max([sens for f, sens in points if f <= r] + [0.0]) for r in rates]
    return {"n_positive": n_pos, "n_negative": n_neg, "auc": float(auc), "pd_at_pfa": pd_at,
            "pfa_at_pd": pfa_at, "per_class": per_class,
            "froc": {"sensitivity_at": froc_at, "mean_sensitivity": sum(froc_at) / len(froc_at),
                     "n_points": len(points)}}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    sets = {"mixed": make_mixed(), "dense": make_dense(), "ties": make_ties()}
    cases = []
    atr = {}
    for name, (gt, results) in sets.items():
        atr[name] = atr_reference(gt, results)
        gt_path, res_path = OUT / f"{name}.gt.json", OUT / f"{name}.results.json"
        gt_path.write_text(json.dumps(gt, separators=(",", ":")) + "\n")
        res_path.write_text(json.dumps(results, separators=(",", ":")) + "\n")
        for max_dets in ([1, 10, 100], [1, 10, 1000], [1, 5, 20]):
            out = run_cocoeval(gt_path, res_path, max_dets)
            cases.append({"set": name, "gt": gt_path.name, "results": res_path.name, **out})
            print(f"{name:6s} maxDets={max_dets}: AP={out['stats'][0]:.4f} AP50={out['stats'][1]:.4f} "
                  f"AR={out['stats'][8]:.4f}")
    ref = {"schema_version": SCHEMA_VERSION, "generator": "eval/reference/make_reference.py",
           "pycocotools": pycocotools.__version__ if hasattr(pycocotools, "__version__") else "2.0.10",
           "numpy": np.__version__, "cases": cases, "atr": atr}
    (OUT / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(cases)} cases, {total / 1e6:.2f} MB under {OUT}")


if __name__ == "__main__":
    main()
