"""Energy registration against the generator's truth on a generated split.

For every case, runs `nii-atr info --json` (which measures the low-energy plane's lag) and
compares what registration would decide (lag at least --min-offset, gradient correlation at
least --min-correlation: the defaults of `[preprocess.registration]`) with the case's
`synth.artefacts` list in its `scan.json`: a case with "interlace_offset" was rendered with its
low-energy lines half a scan line late. Prints the agreement and the measured lags of both
groups. Standard library only.

    python registration_check.py <split folder, e.g. datasets/generated/cargo-bench/val> \
        [--bin target/release/nii-atr] [--out lags.json]
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("split")
    ap.add_argument("--bin", default="target/release/nii-atr")
    ap.add_argument("--out", help="write [case, interlaced, measurement] rows as JSON")
    ap.add_argument("--min-offset", type=float, default=0.25)
    ap.add_argument("--max-offset", type=float, default=1.0)
    ap.add_argument("--min-correlation", type=float, default=0.2)
    a = ap.parse_args()
    paths = sorted(glob.glob(os.path.join(a.split, "*", "scan.json")))
    if not paths:
        sys.exit(f"error: {a.split}: no <case>/scan.json found")
    rows = []
    for i, path in enumerate(paths, 1):
        truth = json.load(open(path)).get("synth")
        if truth is None:
            sys.exit(f"error: {path}: no `synth` block (not a generated scan)")
        interlaced = "interlace_offset" in truth.get("artefacts", [])
        run = subprocess.run([a.bin, "info", "--json", path], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"error: {path}: nii-atr info failed: {run.stderr.strip()}")
        rows.append((os.path.basename(os.path.dirname(path)), interlaced, json.loads(run.stdout)["energy_registration"]))
        print(f"\r{i}/{len(paths)} cases", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if a.out:
        json.dump(rows, open(a.out, "w"), indent=1)

    def applied(m):
        return bool(
            m
            and a.min_offset <= abs(m["offset_columns"]) <= a.max_offset
            and m["correlation"] >= a.min_correlation
        )

    tp = sum(1 for _, i, m in rows if i and applied(m))
    fp = sum(1 for _, i, m in rows if not i and applied(m))
    n_i = sum(1 for _, i, _ in rows if i)
    n_o = len(rows) - n_i
    agree = sum(1 for _, i, m in rows if i == applied(m))
    print(f"{len(rows)} cases: {n_i} interlaced, {tp} of them found; {n_o} others, {fp} of them found")
    print(f"agreement with the generator's truth: {agree}/{len(rows)} = {agree / len(rows):.3f}")
    for flag, label in ((True, "interlaced"), (False, "others")):
        lags = [m["offset_columns"] for _, i, m in rows if i == flag and m]
        none = sum(1 for _, i, m in rows if i == flag and not m)
        if lags:
            print(
                f"{label}: lag min {min(lags):+.3f}, median {statistics.median(lags):+.3f}, "
                f"max {max(lags):+.3f} scan lines; not measurable {none}"
            )


if __name__ == "__main__":
    main()
