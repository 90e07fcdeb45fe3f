"""The decision's evidence rule, compared on one inspection run: maximum against noisy-OR.

Reads `nii-atr inspect` outputs made with `cargo-bench-test.pipeline.toml` (every detector box,
each scan's anomaly peak, the manifest checks) and simulates the shipped default from them: the
detector's boxes at or above its `min_score`, an anomaly finding only where the peak reaches the
anomaly spec's `threshold`, the default's threat weights and review / alarm thresholds. Then
scores two rules per scan:
  max       risk = max over findings of score x weight (the engine's rule);
  noisy_or  each source (detector, anomaly model, manifest checks) gives its highest weighted
            finding p; risk = 1 - prod(1 - p) (boxes of one detector are not independent
            evidence, so they are not multiplied together).
Prints ROC AUC, Pd at Pfa <= 0.5 / 1 / 2 / 5 % (read as `nii-atr eval` reads its ROC) and the
share of clean and threat scans each rule decides `alarm` and `clear`. Standard library only.

    nii-atr inspect <split> --config cargo-bench-test.pipeline.toml --no-overlay -o <out>
    python decision_rules.py --inspect <out> --gt <split>/annotations.json
"""

import argparse
import bisect
import glob
import json
import os
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("concealment-det", "cargo-anomaly", "verify")


def auc(pos, neg):
    neg = sorted(neg)
    total = 0.0
    for p in pos:
        lo, hi = bisect.bisect_left(neg, p), bisect.bisect_right(neg, p)
        total += lo + 0.5 * (hi - lo)
    return total / (len(pos) * len(neg))


def pd_at(pos, neg, pfa):
    """Pd at the lowest threshold whose Pfa stays at or below `pfa` (scores above it count)."""
    ranked = sorted(neg, reverse=True)
    k = int(pfa * len(neg))
    thr = ranked[k] if k < len(ranked) else float("-inf")
    return sum(p > thr for p in pos) / len(pos), sum(n > thr for n in neg) / len(neg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inspect", required=True, help="folder of <scan>.inspection.json")
    ap.add_argument("--gt", required=True, help="the split's annotations.json")
    ap.add_argument("--config", default=os.path.join(HERE, "../../models/pipeline.default.toml"))
    args = ap.parse_args()
    with open(args.config, "rb") as f:
        cfg = tomllib.load(f)
    base = os.path.dirname(os.path.abspath(args.config))
    min_score, ano_thr = {}, None
    for m in cfg["models"]:
        name = os.path.basename(os.path.dirname(m["path"]))
        min_score[name] = m.get("min_score", 0.0)
        spec_path = m.get("spec") or os.path.join(os.path.dirname(m["path"]), "model.toml")
        with open(os.path.join(base, spec_path), "rb") as f:
            spec = tomllib.load(f)
        if spec.get("task") == "anomaly_map":
            ano_thr = spec["decoder"]["threshold"]
    dec = cfg["decision"]
    weights, default_w = dec["threat_weights"], dec.get("default_weight", 0.5)
    with open(args.gt) as f:
        gt = json.load(f)
    img = {i["id"]: i["file_name"].split("/")[0] for i in gt["images"]}
    threat_scans = {img[a["image_id"]] for a in gt["annotations"]}

    rules = {"max": ([], []), "noisy_or": ([], [])}
    files = sorted(glob.glob(os.path.join(args.inspect, "*.inspection.json")))
    if not files:
        raise SystemExit(f"no inspection files in {args.inspect}")
    for path in files:
        with open(path) as f:
            r = json.load(f)
        best = dict.fromkeys(SOURCES, 0.0)
        for x in r["findings"]:
            src, s = x["model"], x["score"]
            if src == "cargo-anomaly" and s < ano_thr:
                continue
            if s < min_score.get(src, 0.0):
                continue
            p = min(1.0, s * weights.get(x["threat"], default_w))
            key = src if src in best else "verify"  # any other source is a check on the scan
            best[key] = max(best[key], p)
        noisy = 1.0
        for p in best.values():
            noisy *= 1.0 - p
        side = 0 if r["scan_id"] in threat_scans else 1
        rules["max"][side].append(max(best.values()))
        rules["noisy_or"][side].append(1.0 - noisy)
    n_pos, n_neg = len(rules["max"][0]), len(rules["max"][1])
    print(f"{len(files)} scans ({n_pos} threat, {n_neg} clean); default simulated from {args.config}: "
          f"min_score {min_score}, anomaly threshold {ano_thr}, review {dec['review_threshold']}, "
          f"alarm {dec['alarm_threshold']}")
    for name, (pos, neg) in rules.items():
        cols = [f"{name:8s} ROC AUC {auc(pos, neg):.4f}"]
        for pfa in (0.005, 0.01, 0.02, 0.05):
            pd, fa = pd_at(pos, neg, pfa)
            cols.append(f"Pd@{pfa * 100:g}% {pd:.3f} (Pfa {fa:.3f})")
        alarm = dec["alarm_threshold"]
        review = dec["review_threshold"]
        cols.append(f"alarm: clean {sum(s >= alarm for s in neg) / n_neg:.4f}, threat {sum(s >= alarm for s in pos) / n_pos:.3f}; "
                    f"clear: clean {sum(s < review for s in neg) / n_neg:.3f}, threat {sum(s < review for s in pos) / n_pos:.3f}")
        print(" | ".join(cols))


if __name__ == "__main__":
    main()
