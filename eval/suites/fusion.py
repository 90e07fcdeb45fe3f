"""How much the anomaly model should weigh in the risk: the fusion of the two image models,
chosen on val from one `nii-atr eval --dataset` report.

The engine fuses by its decision rule, `risk = max over findings of score x weight(threat)`:
an anomaly region exists only where the map reaches the anomaly spec's `threshold` (tau) and
then counts with `[decision.threat_weights] anomaly` (w). This script reads the per-scan
records of a report made with every detector box and every anomaly peak kept (the suite
config `cargo-bench-test.pipeline.toml` or one like it: anomaly regions down to 0, no
`min_score`), rebuilds the models' risk (manifest checks left out: they score the
declaration, not the image) for each (tau, w) on a grid, and reads ROC AUC and Pd at
Pfa <= 2 % on the any-threat task, plus the share of clean scans each rule sends to review
and alarm at the default thresholds. The default's detector `min_score` (0.3) is not
applied: with weights <= 1 a box below it adds less than the review threshold, so it moves
only the order of scans that would be cleared anyway (the AUC, not Pd at these Pfa).

Selection: two folds by image id parity; on each fold the grid point with the highest Pd at
Pfa <= 2 % (then AUC) among those that alarm no more clean scans than the detector alone and
send at most 2 points more of them to review is chosen and read on the other fold, so the
gain is measured on scans the choice never saw. Then the same choice on all scans gives the
values to put in the config. Standard library only.

    nii-atr eval --dataset <val> --skip 400 --config <suite config> --report <dir>
    python fusion.py --report <dir>/report.json            # choose (tau, w) on val
    python fusion.py --report <dir>/report.json --tau T --w W --bootstrap 1000  # read one
"""

import argparse
import bisect
import json
import random

DETECTOR, ANOMALY, MANIFEST = "concealment-det", "cargo-anomaly", "verify"
TAUS = (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
WEIGHTS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
REVIEW, ALARM = 0.3, 0.6  # the default config's thresholds


def auc(pos, neg):
    neg = sorted(neg)
    total = 0.0
    for p in pos:
        lo, hi = bisect.bisect_left(neg, p), bisect.bisect_right(neg, p)
        total += lo + 0.5 * (hi - lo)
    return total / (len(pos) * len(neg))


def pd_at(pos, neg, pfa):
    """Pd at the lowest threshold whose Pfa stays at or below `pfa`, as `nii-atr eval` reads
    its ROC: alarm when score >= t, t the score of the (k+1)-th highest negative moved up to
    the next distinct value, k = the most false alarms the limit allows."""
    ranked = sorted(neg, reverse=True)
    k = int(pfa * len(neg) + 1e-9)
    if k >= len(ranked):
        return 1.0
    thr = ranked[k]
    return sum(p > thr for p in pos) / len(pos)


def risk(scan, tau, w, manifest=False):
    s = scan.get("sources", {})
    det = s.get(DETECTOR, {}).get("risk", 0.0)
    a = s.get(ANOMALY, {}).get("score")
    ano = w * a if a is not None and a >= tau else 0.0
    checks = s.get(MANIFEST, {}).get("risk", 0.0) if manifest else 0.0
    return max(det, min(ano, 1.0), checks)


def score(scans, tau, w, manifest=False):
    pos = [risk(s, tau, w, manifest) for s in scans if s["classes"]]
    neg = [risk(s, tau, w, manifest) for s in scans if not s["classes"]]
    return {
        "auc": auc(pos, neg),
        "pd2": pd_at(pos, neg, 0.02),
        "pd1": pd_at(pos, neg, 0.01),
        "clean_review": sum(REVIEW <= r < ALARM for r in neg) / len(neg),
        "clean_alarm": sum(r >= ALARM for r in neg) / len(neg),
        "threat_clear": sum(r < REVIEW for r in pos) / len(pos),
    }


def interval(pos, neg, pfa, n, seed=0):
    """95 % percentile interval of Pd at Pfa <= pfa over n resamples of the threat and of the
    clean scans (with replacement), as `targets.py` draws them."""
    rng = random.Random(seed)
    vals = sorted(
        pd_at([pos[rng.randrange(len(pos))] for _ in pos], [neg[rng.randrange(len(neg))] for _ in neg], pfa)
        for _ in range(n)
    )
    return vals[int(0.025 * (n - 1))], vals[int(0.975 * (n - 1))]


def recorded(scans, n_boot):
    """The run's own risk (its config's whole decision rule, as the engine computed it)."""
    pos = [s["risk"] for s in scans if s["classes"]]
    neg = [s["risk"] for s in scans if not s["classes"]]
    line = f"AUC {auc(pos, neg):.4f}  Pd@1% {pd_at(pos, neg, 0.01):.3f}  Pd@2% {pd_at(pos, neg, 0.02):.3f}"
    if n_boot:
        lo, hi = interval(pos, neg, 0.02, n_boot)
        line += f" [{lo:.3f}, {hi:.3f}]"
    decided = {d: sum(s["decision"] == d for s in scans if not s["classes"]) / len(neg) for d in ("review", "alarm")}
    cleared = sum(s["decision"] == "clear" for s in scans if s["classes"]) / len(pos)
    return (
        f"{line}  clean review {decided['review']:.3f}  clean alarm {decided['alarm']:.4f}"
        f"  threat clear {cleared:.3f}"
    )


def choose(scans):
    base = score(scans, 1.0, 0.0)
    best = None
    for tau in TAUS:
        for w in WEIGHTS:
            m = score(scans, tau, w)
            # No more clean alarms than the detector alone, and at most 2 points more clean
            # reviews (what the shipped anomaly threshold was set to send: ~2 % of clean val).
            if m["clean_alarm"] > base["clean_alarm"] or m["clean_review"] > base["clean_review"] + 0.02:
                continue
            key = (round(m["pd2"], 6), round(m["auc"], 6), -w)
            if best is None or key > best[0]:
                best = (key, tau, w, m)
    return best[1], best[2], best[3]


def fmt(m):
    return (
        f"AUC {m['auc']:.4f}  Pd@1% {m['pd1']:.3f}  Pd@2% {m['pd2']:.3f}  clean review {m['clean_review']:.3f}"
        f"  clean alarm {m['clean_alarm']:.4f}  threat clear {m['threat_clear']:.3f}"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", required=True, help="report.json of `nii-atr eval --dataset`")
    ap.add_argument(
        "--tau",
        type=float,
        help="read this (tau, w) instead of choosing (e.g. on test), also with the manifest checks' "
        "findings (the whole decision rule)",
    )
    ap.add_argument("--w", type=float)
    ap.add_argument(
        "--bootstrap", type=int, default=0, help="resamples for the interval of the recorded risk's Pd at Pfa 2 %%"
    )
    args = ap.parse_args()
    with open(args.report) as f:
        scans = json.load(f)["pipeline"].get("scans") or []
    if not scans:
        raise SystemExit(f"{args.report}: no per-scan records (pipeline.scans): re-run `nii-atr eval --dataset`")
    missing = [s["scan"] for s in scans if "decision" not in s]
    if missing:
        raise SystemExit(f"{args.report}: {len(missing)} scans failed, e.g. {missing[0]}")
    n_pos = sum(bool(s["classes"]) for s in scans)
    print(f"{len(scans)} scans ({n_pos} threat, {len(scans) - n_pos} clean)")
    print(f"the run's recorded risk:     {recorded(scans, args.bootstrap)}")
    print(f"detector alone (w = 0):      {fmt(score(scans, 1.0, 0.0))}")
    raw = [dict(s, sources={DETECTOR: {"risk": s.get('sources', {}).get(DETECTOR, {}).get('score', 0.0)}}) for s in scans]
    print(f"detector, unweighted boxes:  {fmt(score(raw, 1.0, 0.0))}")
    if args.tau is not None:
        for manifest in (False, True):
            line = fmt(score(scans, args.tau, args.w, manifest))
            if args.bootstrap:
                pos = [risk(s, args.tau, args.w, manifest) for s in scans if s["classes"]]
                neg = [risk(s, args.tau, args.w, manifest) for s in scans if not s["classes"]]
                lo, hi = interval(pos, neg, 0.02, args.bootstrap)
                line += f"  Pd@2% interval [{lo:.3f}, {hi:.3f}]"
            label = "  and the manifest checks:" if manifest else f"tau {args.tau}, w {args.w}:"
            print(f"{label:<29}{line}")
        return
    folds = [[s for s in scans if s["image_id"] % 2 == k] for k in (0, 1)]
    for k in (0, 1):
        tau, w, m = choose(folds[k])
        other = folds[1 - k]
        print(f"fold {k} chooses tau {tau}, w {w}: on fold {k}: {fmt(m)}")
        print(f"  read on fold {1 - k}: {fmt(score(other, tau, w))}")
        print(f"  detector alone on fold {1 - k}: {fmt(score(other, 1.0, 0.0))}")
    tau, w, m = choose(scans)
    print(f"all scans choose tau {tau}, w {w}: {fmt(m)}")


if __name__ == "__main__":
    main()
