"""Where an anomaly model's scan-level AUROC is lost: the loss split by kind of threat scan.

The AUROC is the mean, over threat scans, of the share of clean scans that score below it
(ties half), so its loss 1 - AUROC is the mean over threat scans of the share of clean scans
that score at or above it. This script gives each threat scan its part of that loss and sums
them by group, to tell a candidate what to aim at (the groups' parts add up to the loss):
  - size: the scan's easiest truth (difficulty easy < medium < hard) and the longest side of
    its longest truth (< 64, 64-199, >= 200 px); scans holding a vehicle apart;
  - the class and concealment of the longest truth, for the easy scans with one >= 200 px.

Each scan's score is its highest `cargo-anomaly` region peak, so the inspections must keep
regions down to 0 (`cargo-bench-test.pipeline.toml`, or a config with `cargo-anomaly-rank.toml`).
Standard library only.

    nii-atr inspect <split> --config cargo-bench-test.pipeline.toml --no-overlay -o <out>
    python anomaly_loss.py --inspect <out> --gt <split>/annotations.json

or, from the per-scan records of an `eval --dataset` report made with such a config (only
the scans it ran, e.g. with `--skip`):

    python anomaly_loss.py --report <dir>/report.json --gt <split>/annotations.json
"""

import argparse
import bisect
import collections
import json
import os

ORDER = {"easy": 0, "medium": 1, "hard": 2}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--inspect", help="folder of <scan>.inspection.json")
    src.add_argument("--report", help="report.json of `nii-atr eval --dataset` (its pipeline.scans)")
    ap.add_argument("--gt", required=True, help="the split's annotations.json (COCO, with attributes)")
    ap.add_argument("--model", default="cargo-anomaly", help="name of the anomaly model's findings")
    args = ap.parse_args()

    gt = json.load(open(args.gt))
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    truths = collections.defaultdict(list)
    for a in gt["annotations"]:
        truths[a["image_id"]].append(a)
    clean, threat = [], []
    if args.report:
        records = json.load(open(args.report))["pipeline"].get("scans") or []
        if not records:
            raise SystemExit(f"{args.report}: no per-scan records (pipeline.scans): re-run `nii-atr eval --dataset`")
        for r in records:
            peak = r.get("sources", {}).get(args.model, {}).get("score")
            if peak is None:
                raise SystemExit(f"{args.report}: {r['scan']}: no {args.model} region; keep its regions down to 0")
            (threat if truths[r["image_id"]] else clean).append((peak, truths[r["image_id"]]))
    for im in gt["images"] if args.inspect else []:
        scan = im["file_name"].split("/")[0]
        path = os.path.join(args.inspect, f"{scan}.inspection.json")
        if not os.path.exists(path):
            raise SystemExit(f"{path}: missing (inspect the whole split)")
        found = json.load(open(path))["findings"]
        peaks = [f["region"]["peak"] for f in found if f.get("model") == args.model and "region" in f]
        if not peaks:
            raise SystemExit(f"{path}: no {args.model} region; inspect with its regions kept down to 0")
        (threat if truths[im["id"]] else clean).append((max(peaks), truths[im["id"]]))
    if not clean or not threat:
        raise SystemExit("need both clean and threat scans")

    neg = sorted(p for p, _ in clean)

    def loss(p):
        lo, hi = bisect.bisect_left(neg, p), bisect.bisect_right(neg, p)
        return (len(neg) - hi + 0.5 * (hi - lo)) / len(neg)

    total = sum(loss(p) for p, _ in threat) / len(threat)
    print(f"{len(threat)} threat / {len(clean)} clean scans: AUROC {1 - total:.3f}, loss {total:.3f}")

    def side(a):
        return max(a["bbox"][2], a["bbox"][3])

    size, big = collections.defaultdict(list), collections.defaultdict(list)
    for p, objs in threat:
        if any(cats[a["category_id"]] == "vehicle" for a in objs):
            size["holds a vehicle"].append(p)
            continue
        easiest = min((a["attributes"]["difficulty"] for a in objs), key=ORDER.get)
        longest = max(objs, key=side)
        s = side(longest)
        size[f"easiest {easiest}, longest {'< 64' if s < 64 else '64-199' if s < 200 else '>= 200'} px"].append(p)
        if easiest == "easy" and s >= 200:
            big[f"class {cats[longest['category_id']]}"].append(p)
            big[f"concealment {longest['attributes'].get('concealment')}"].append(p)

    for title, groups in (("by size and difficulty", size),
                          ("easy scans with a truth >= 200 px, by its class and concealment", big)):
        print(f"\n{title}:")
        print(f"  {'group':60} {'scans':>5} {'mean loss':>9} {'part of the loss':>16}")
        for key in sorted(groups):
            ls = [loss(p) for p in groups[key]]
            print(f"  {key:60} {len(ls):5d} {sum(ls) / len(ls):9.3f} {sum(ls) / len(threat):16.4f}")


if __name__ == "__main__":
    main()
