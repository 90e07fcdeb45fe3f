"""Why threat-free scans leave `clear`: splits an `nii-atr eval --dataset` run's per-scan
records (report.json, `pipeline.scans`) by the split's truth (truth.jsonl: declaration
violation or not) and names the sources whose weighted risk reached the review threshold.

    python review_causes.py --report ../reports/pipeline-cargo-bench-v2-test/default-config/report.json \
        --truth <test>/truth.jsonl --review 0.3
"""
import argparse
import collections
import json
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--report", type=Path, required=True)
ap.add_argument("--truth", type=Path, required=True)
ap.add_argument("--review", type=float, default=0.3, help="the config's review_threshold")
args = ap.parse_args()
truth = {}
for line in args.truth.read_text().splitlines():
    if line.strip():
        t = json.loads(line)
        truth[t["case_id"]] = t
decisions, causes = collections.Counter(), collections.Counter()
for s in json.loads(args.report.read_text())["pipeline"]["scans"]:
    case = Path(s["scan"]).parent.name
    if case not in truth:
        raise SystemExit(f"{args.report}: scan {s['scan']} has no record in {args.truth}")
    if s["classes"]:
        continue  # holds a threat
    declared_ok = truth[case]["mismatch"]["kind"] == "none"
    group = "correctly declared" if declared_ok else "declaration violation"
    decisions[(group, s["decision"])] += 1
    if declared_ok and s["decision"] != "clear":
        who = sorted(k for k, v in s["sources"].items() if v["risk"] >= args.review)
        causes[" + ".join(who) or "(none at the threshold)"] += 1
for group in ("correctly declared", "declaration violation"):
    n = sum(v for (g, _), v in decisions.items() if g == group)
    row = ", ".join(f"{d} {decisions[(group, d)]}" for d in ("clear", "review", "alarm"))
    print(f"threat-free, {group}: {n} scans: {row}")
print("correctly declared threat-free scans not cleared, by source at the review threshold:")
for who, n in causes.most_common():
    print(f"  {who}: {n}")
