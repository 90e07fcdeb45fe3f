"""Issue 6's operating-point targets from a COCO results file and the split's ground truth.

Scan score = the highest detection score (of any class, or of one class); positives are scans
holding a threat (of that class), negatives scans without one (for a class: without that
class). Reads the Pd at the largest threshold whose Pfa stays at or below each target, as
`nii-atr eval` reads its ROC. Also splits the any-threat Pd at Pfa <= 2 % by the
difficulty of the hardest threat in each threat scan.

    python targets.py --gt <split>/annotations.json --predictions det.json [--bootstrap 1000]

`--bootstrap N`: 95 % percentile intervals from N resamples of the scans (with replacement,
seed 0), the operating point re-read on each resample, as `nii-atr eval` does for its own
Pd-at-Pfa intervals.
"""

import argparse
import json
import random
from collections import defaultdict


def pd_at_pfa(pos, neg, max_pfa):
    """Best Pd over thresholds t (alarm when score >= t) with Pfa <= max_pfa."""
    cands = sorted(set(pos) | set(neg) | {float("inf")}, reverse=True)
    best = (0.0, 0.0, float("inf"))
    for t in cands:
        pfa = sum(s >= t for s in neg) / max(1, len(neg))
        if pfa > max_pfa:
            break
        pd = sum(s >= t for s in pos) / max(1, len(pos))
        best = (pd, pfa, t)
    return best


def pd_at_pfa_fast(pos, neg, max_pfa):
    """Pd of `pd_at_pfa` in O(n log n): alarm when score >= t, t just above the (k+1)-th highest
    negative, k = the most false alarms Pfa <= max_pfa allows."""
    neg = sorted(neg, reverse=True)
    k = int(max_pfa * len(neg) + 1e-9)
    if k >= len(neg):
        return sum(s > float("-inf") for s in pos) / max(1, len(pos))
    return sum(s > neg[k] for s in pos) / max(1, len(pos))


def bootstrap(pos, neg, max_pfa, n, rng):
    """95 % interval of the Pd at Pfa <= max_pfa over n resamples of positives and negatives."""
    vals = sorted(
        pd_at_pfa_fast([pos[rng.randrange(len(pos))] for _ in pos], [neg[rng.randrange(len(neg))] for _ in neg], max_pfa)
        for _ in range(n)
    )
    return [vals[int(0.025 * (n - 1))], vals[int(0.975 * (n - 1))]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gt", required=True)
    ap.add_argument("--predictions", required=True)
    ap.add_argument("--bootstrap", type=int, default=0, help="resamples for 95 %% intervals (0: none)")
    a = ap.parse_args()
    rng = random.Random(0)
    gt = json.load(open(a.gt))
    cats = {c["id"]: c["name"] for c in gt["categories"]}
    images = [im["id"] for im in gt["images"]]
    classes = defaultdict(set)
    hardest = {}
    rank = {"hard": 0, "medium": 1, "easy": 2}
    for an in gt["annotations"]:
        classes[an["image_id"]].add(an["category_id"])
        d = an.get("attributes", {}).get("difficulty", "easy")
        cur = hardest.get(an["image_id"])
        hardest[an["image_id"]] = d if cur is None or rank[d] < rank[cur] else cur
    best = defaultdict(lambda: float("-inf"))
    best_c = defaultdict(lambda: float("-inf"))
    for p in json.load(open(a.predictions)):
        best[p["image_id"]] = max(best[p["image_id"]], p["score"])
        key = (p["image_id"], p["category_id"])
        best_c[key] = max(best_c[key], p["score"])
    pos = [best[i] for i in images if classes[i]]
    neg = [best[i] for i in images if not classes[i]]
    out = {}
    pd, pfa, t = pd_at_pfa(pos, neg, 0.02)
    out["any_threat_pd_at_pfa_2pct"] = {"pd": pd, "pfa": pfa, "threshold": t, "scans_with": len(pos), "clean": len(neg)}
    assert abs(pd_at_pfa_fast(pos, neg, 0.02) - pd) < 1e-12
    if a.bootstrap:
        out["any_threat_pd_at_pfa_2pct"]["ci95"] = bootstrap(pos, neg, 0.02, a.bootstrap, rng)
    for d in ["easy", "medium", "hard"]:
        p_d = [best[i] for i in images if classes[i] and hardest[i] == d]
        out[f"any_threat_pd_at_pfa_2pct_{d}"] = {"pd": sum(s >= t for s in p_d) / max(1, len(p_d)), "scans": len(p_d)}
    for name, max_pfa in [("vehicle", 0.005), ("firearm", 0.03)]:
        cid = next(k for k, v in cats.items() if v == name)
        pos_c = [best_c[(i, cid)] for i in images if cid in classes[i]]
        neg_c = [best_c[(i, cid)] for i in images if cid not in classes[i]]
        pd, pfa, t = pd_at_pfa(pos_c, neg_c, max_pfa)
        key = f"{name}_pd_at_pfa_{max_pfa * 100:g}pct"
        out[key] = {"pd": pd, "pfa": pfa, "threshold": t, "scans_with": len(pos_c), "scans_without": len(neg_c)}
        assert abs(pd_at_pfa_fast(pos_c, neg_c, max_pfa) - pd) < 1e-12
        if a.bootstrap:
            out[key]["ci95"] = bootstrap(pos_c, neg_c, max_pfa, a.bootstrap, rng)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
