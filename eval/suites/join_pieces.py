"""What joining a detector's pieces of one object would win, without touching the engine: joins
same-class boxes of one scan that sit side by side along the scan (horizontal gap <= --gap px,
>= 50 % of the shorter one's height shared; transitively) into their union with the best score,
for the classes in --classes, and writes the joined predictions with the matching ground-truth
subset, to be re-scored by `nii-atr eval --gt OUT/gt.json --predictions OUT/pred.json`.

    python join_pieces.py --gt <val>/annotations.json --predictions <report>/predictions.json \
        --skip 1000 --limit 600 --gap 0 --classes hidden_compartment --out DIR
"""
import argparse
import collections
import json
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--gt", type=Path, required=True)
ap.add_argument("--predictions", type=Path, required=True)
ap.add_argument("--skip", type=int, default=0, help="as `nii-atr eval --skip`: images in annotation order")
ap.add_argument("--limit", type=int, required=True)
ap.add_argument("--gap", type=float, default=0.0, help="largest horizontal gap between joined boxes (px)")
ap.add_argument("--classes", default="", help="comma-separated class names to join (none: a pass-through)")
ap.add_argument("--out", type=Path, required=True)
args = ap.parse_args()
gt = json.loads(args.gt.read_text())
images = gt["images"][args.skip:args.skip + args.limit]
ids = {i["id"] for i in images}
ids_by_name = {c["name"]: c["id"] for c in gt["categories"]}
wanted = [c for c in args.classes.split(",") if c]
unknown = [c for c in wanted if c not in ids_by_name]
if unknown:
    raise SystemExit(f"{args.gt}: no categories {unknown}")
join = {ids_by_name[c] for c in wanted}
args.out.mkdir(parents=True, exist_ok=True)
(args.out / "gt.json").write_text(json.dumps(
    {**gt, "images": images, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}))
preds = json.loads(args.predictions.read_text())
groups, kept = collections.defaultdict(list), []
for p in preds:
    if p["image_id"] not in ids:
        raise SystemExit(f"{args.predictions}: image {p['image_id']} is outside --skip/--limit")
    (groups[(p["image_id"], p["category_id"])] if p["category_id"] in join else kept).append(p)


def side_by_side(a, b):
    shared = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    gap = max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2])
    return gap <= args.gap and shared >= 0.5 * min(a[3], b[3])


joined = 0
for ps in groups.values():
    parent = list(range(len(ps)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(ps)):
        for j in range(i + 1, len(ps)):
            if side_by_side(ps[i]["bbox"], ps[j]["bbox"]):
                parent[root(i)] = root(j)
    parts = collections.defaultdict(list)
    for i, p in enumerate(ps):
        parts[root(i)].append(p)
    for c in parts.values():
        x1, y1 = min(p["bbox"][0] for p in c), min(p["bbox"][1] for p in c)
        x2, y2 = max(p["bbox"][0] + p["bbox"][2] for p in c), max(p["bbox"][1] + p["bbox"][3] for p in c)
        kept.append({**max(c, key=lambda p: p["score"]), "bbox": [x1, y1, x2 - x1, y2 - y1]})
        joined += len(c) - 1
(args.out / "pred.json").write_text(json.dumps(kept))
print(f"{len(preds)} predictions, {joined} joined into others: {len(kept)} written to {args.out / 'pred.json'}")
