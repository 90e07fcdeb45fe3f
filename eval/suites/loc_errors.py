"""Where a detector's localisation errors come from (TIDE's `loc`, split by shape), from an
`nii-atr eval --dataset` run's boxes against the split's COCO ground truth.

Per truth box: its best same-class prediction (score >= --min-score) by IoU: found (>= 0.5),
missed (< 0.1), or a localisation error, split into a fragment (>= 80 % of the prediction lies
inside the truth), oversize (>= 80 % of the truth lies inside the prediction) or shifted; and
whether the union of the same-class predictions lying mostly (> 60 %) inside the truth would
reach IoU 0.5 (what a merge joining the pieces could win). Per prediction at --min-score,
highest first, greedy as COCO matches: true positive, duplicate of a found truth, the same
three shapes against its best same-class truth, or background (IoU < 0.1).

    python loc_errors.py --gt <val>/annotations.json --predictions <report>/predictions.json \
        --skip 400 --limit 600 --min-score 0.3
"""
import argparse
import collections
import json
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--gt", type=Path, required=True)
ap.add_argument("--predictions", type=Path, required=True)
ap.add_argument("--skip", type=int, default=0, help="as `nii-atr eval --skip`: images in annotation order")
ap.add_argument("--limit", type=int, default=None)
ap.add_argument("--min-score", type=float, default=0.1)
args = ap.parse_args()
gt = json.loads(args.gt.read_text())
images = gt["images"][args.skip:] if args.limit is None else gt["images"][args.skip:args.skip + args.limit]
ids = {i["id"] for i in images}
names = {c["id"]: c["name"] for c in gt["categories"]}
truth = collections.defaultdict(list)
for a in gt["annotations"]:
    if a["image_id"] in ids and not a.get("iscrowd"):
        truth[(a["image_id"], a["category_id"])].append({"box": a["bbox"], "found": False})
preds = collections.defaultdict(list)
for p in json.loads(args.predictions.read_text()):
    if p["image_id"] not in ids:
        raise SystemExit(f"{args.predictions}: image {p['image_id']} is outside --skip/--limit")
    if p["score"] >= args.min_score:
        preds[(p["image_id"], p["category_id"])].append(p)


def inter(a, b):
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def iou(a, b):
    i = inter(a, b)
    return i / (a[2] * a[3] + b[2] * b[3] - i)


def shape(t, p):
    i = inter(t, p)
    return "fragment" if i > 0.8 * p[2] * p[3] else "oversize" if i > 0.8 * t[2] * t[3] else "shifted"


per_truth = collections.defaultdict(collections.Counter)
for key, ts in truth.items():
    name = names[key[1]]
    for t in ts:
        ps = [p["bbox"] for p in preds[key]]
        best = max(ps, key=lambda p: iou(t["box"], p), default=None)
        v = iou(t["box"], best) if best else 0.0
        row = per_truth[name]
        row["truth"] += 1
        if v >= 0.5:
            row["found"] += 1
        elif v < 0.1:
            row["missed"] += 1
        else:
            row[shape(t["box"], best)] += 1
            inside = [p for p in ps if inter(t["box"], p) > 0.6 * p[2] * p[3]]
            if inside:
                x1, y1 = min(p[0] for p in inside), min(p[1] for p in inside)
                x2, y2 = max(p[0] + p[2] for p in inside), max(p[1] + p[3] for p in inside)
                if iou(t["box"], [x1, y1, x2 - x1, y2 - y1]) >= 0.5:
                    row["union fixes"] += 1
per_pred = collections.defaultdict(collections.Counter)
for key, ps in preds.items():
    for p in sorted(ps, key=lambda p: -p["score"]):
        row = per_pred[names[key[1]]]
        row["predictions"] += 1
        best = max(truth[key], key=lambda t: iou(t["box"], p["bbox"]), default=None)
        v = iou(best["box"], p["bbox"]) if best else 0.0
        if v >= 0.5 and not best["found"]:
            best["found"] = True
            row["true positive"] += 1
        elif v >= 0.5:
            row["duplicate"] += 1
        elif v < 0.1:
            row["background"] += 1
        else:
            row[shape(best["box"], p["bbox"])] += 1


def table(title, rows, cols):
    print(f"\n{title}\n\n| class | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for name in sorted(rows):
        print(f"| {name} | " + " | ".join(str(rows[name][c]) for c in cols) + " |")


print(f"{len(images)} scans of {args.gt}, predictions {args.predictions} at score >= {args.min_score}")
table("Truth boxes by their best same-class prediction", per_truth,
      ["truth", "found", "fragment", "oversize", "shifted", "missed", "union fixes"])
table("Predictions, highest score first", per_pred,
      ["predictions", "true positive", "duplicate", "fragment", "oversize", "shifted", "background"])
