"""What a pipeline taking some classes from a second detector would read, before the engine runs it.

Reads two COCO results files made by `nii-atr eval --dataset` on the same scans (the same tiling
and merge, one detector each) and writes:
  - the combination: the base detector's boxes for every class except `--take`, plus the other
    detector's boxes for the classes in `--take` (what the engine does with `classes = [...]` on a
    `[[models]]` entry: a model's other classes are dropped after decoding, before the merge,
    which is class-aware, so the boxes are the same);
  - the ground truth restricted to the scans the base file covers, so that
    `nii-atr eval --gt <gt> --predictions <file>` scores both files on exactly those scans.
Score the base file the same way for a like-for-like comparison. Standard library only.

    python class_from.py --gt <split>/annotations.json --base <base>/predictions.json \
        --other <other>/predictions.json --take firearm --skip 1000 --limit 600 --out <dir>
    nii-atr eval --gt <dir>/gt.json --predictions <dir>/base.json --report <dir>/rep-base
    nii-atr eval --gt <dir>/gt.json --predictions <dir>/combined.json --report <dir>/rep-combined
"""

import argparse
import json
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gt", required=True, help="COCO instances JSON of the whole split")
    ap.add_argument("--base", required=True, help="COCO results of the base detector")
    ap.add_argument("--other", required=True, help="COCO results of the detector the classes come from")
    ap.add_argument("--take", required=True, nargs="+", help="class names taken from --other")
    ap.add_argument("--skip", type=int, default=0, help="the eval runs' --skip (cases in split order)")
    ap.add_argument("--limit", type=int, help="the eval runs' --limit")
    ap.add_argument("--out", required=True, help="folder for gt.json, base.json, combined.json")
    a = ap.parse_args()

    gt = json.load(open(a.gt))
    names = {c["name"]: c["id"] for c in gt["categories"]}
    unknown = [n for n in a.take if n not in names]
    if unknown:
        print(f"{a.gt}: no category named {', '.join(unknown)}", file=sys.stderr)
        return 2
    take = {names[n] for n in a.take}
    base = json.load(open(a.base))
    other = json.load(open(a.other))
    # The eval runs' cases: the split's scans in order, after --skip, at most --limit.
    end = None if a.limit is None else a.skip + a.limit
    sub = dict(gt)
    sub["images"] = gt["images"][a.skip : end]
    ids = {im["id"] for im in sub["images"]}
    for path, dets in ((a.base, base), (a.other, other)):
        outside = sorted({d["image_id"] for d in dets} - ids)
        if outside:
            print(f"{path}: boxes on scans outside --skip/--limit, e.g. {outside[:5]}", file=sys.stderr)
            return 2
    sub["annotations"] = [an for an in gt["annotations"] if an["image_id"] in ids]
    combined = [d for d in base if d["category_id"] not in take] + [d for d in other if d["category_id"] in take]
    os.makedirs(a.out, exist_ok=True)
    for name, obj in (("gt.json", sub), ("base.json", base), ("combined.json", combined)):
        with open(os.path.join(a.out, name), "w") as f:
            json.dump(obj, f)
    print(
        f"{len(sub['images'])} scans, {len(sub['annotations'])} objects; "
        f"base {len(base)} boxes, combined {len(combined)} "
        f"({sum(d['category_id'] in take for d in base)} {'/'.join(a.take)} boxes swapped for "
        f"{sum(d['category_id'] in take for d in other)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
