"""COCO results from a `nii-atr inspect <split> -o DIR` run, for `nii-atr eval --gt --predictions`.

`inspect` numbers scans in input order from 1, which for a generated split is the order of
annotations.json's images; each scan's `<case>.inspection.json` is read here so that
categories are matched by class name (the detector's class ids are 0-based, COCO's 1-based)
and detector boxes and anomaly regions are kept apart:

    python inspections_to_coco.py --gt <split>/annotations.json --inspect DIR --out det.json
    python inspections_to_coco.py --gt ... --inspect DIR --out anomaly.json --anomaly

`--anomaly`: every anomaly region becomes a detection of the first category with its peak
score, so the scan-level ROC of `eval` ranks scans by their anomaly peak (class-blind).
Also prints the per-scan latency (median, p95, max of `timings.total_ms`).
"""

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gt", type=Path, required=True)
    ap.add_argument("--inspect", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--anomaly", action="store_true")
    args = ap.parse_args()
    gt = json.loads(args.gt.read_text())
    by_name = {c["name"]: c["id"] for c in gt["categories"]}
    first = min(by_name.values())
    image_of_case = {Path(im["scan"]).parent.name: im["id"] for im in gt["images"]}
    results, times, missing = [], [], 0
    for case, image_id in sorted(image_of_case.items(), key=lambda kv: kv[1]):
        path = args.inspect / f"{case}.inspection.json"
        if not path.is_file():
            missing += 1
            continue
        ins = json.loads(path.read_text())
        times.append(ins["timings"]["total_ms"])
        for f in ins["findings"]:
            b = f["bbox_px"]
            box = [b["x1"], b["y1"], b["x2"] - b["x1"], b["y2"] - b["y1"]]
            if args.anomaly:
                if f["kind"] == "anomaly_region":
                    results.append({"image_id": image_id, "category_id": first, "bbox": box, "score": f["score"]})
            elif f["kind"] == "object":
                if f["class_name"] not in by_name:
                    raise SystemExit(f"{path}: class `{f['class_name']}` is not a category of {args.gt}")
                results.append(
                    {"image_id": image_id, "category_id": by_name[f["class_name"]], "bbox": box, "score": f["score"]}
                )
    if missing:
        raise SystemExit(f"{missing} scans of {args.gt} have no inspection in {args.inspect}")
    args.out.write_text(json.dumps(results))
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{len(results)} detections on {len(times)} scans -> {args.out}; "
          f"latency ms median {p(0.5):.0f}, p95 {p(0.95):.0f}, max {times[-1]:.0f}")


if __name__ == "__main__":
    main()
