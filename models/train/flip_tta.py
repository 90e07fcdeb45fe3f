"""Horizontal-flip test-time augmentation, built into a trained detector's ONNX graph.

A cargo scan mirrored left to right is the same container driven through the portal the other
way round, and the detector trained on mirrored tiles. The new graph runs the detector once on
the batch [tiles; mirrored tiles], maps the mirror's anchor grid back (cell (i, j) <-> (i, W-1-j);
cx -> width - cx) and averages the two views per anchor, boxes and class probabilities, as
CenterNet's flip test averages its heatmaps. Averaging lowers the single-view noise peaks that
set clean scans' highest scores, so each class's operating point is chosen again on val with
the detector's own rule (the 99.5 % quantile of the class's highest score over val scans
without the class) and applied as a logit shift: 0.5 stays each class's point. The output keeps
the YOLOv8 layout [N, 4 + nc, A], so the engine and any Ultralytics-style consumer run it as is.

    python flip_tta.py --model ../concealment-det/model.onnx --spec ../concealment-det/model.toml \
        --val <tiles/val> --out <dir> --version 5
"""

from __future__ import annotations

import argparse
import math
import time
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from common import CATEGORIES, load_tiles, log, write_json
from detector import choose_offsets, scan_class_max

NC = len(CATEGORIES)
EPS = 1e-7  # probabilities are clamped to [EPS, 1 - EPS] before the logit shift


def grid_of(model: onnx.ModelProto, width: int, height: int) -> tuple[int, int, int]:
    """(rows, cols, stride) of the single output level, from the output of one blank input (the
    exported graph leaves its output dims symbolic) and the spec's input size; refuses anything
    that is not one square-celled grid in the YOLOv8 layout."""
    c = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value or 3
    out = session(model).run(None, {model.graph.input[0].name: np.zeros((1, c, height, width), np.float32)})[0]
    if out.ndim != 3 or out.shape[1] != 4 + NC:
        raise SystemExit(f"expected a [N, {4 + NC}, A] output, got {list(out.shape)}")
    anchors = out.shape[2]
    stride = math.sqrt(width * height / anchors)
    s = int(round(stride))
    if abs(stride - s) > 1e-9 or width % s or height % s:
        raise SystemExit(f"{anchors} anchors do not form one grid on a {width} x {height} input")
    return height // s, width // s, s


def build(model: onnx.ModelProto, width: int, rows: int, cols: int, shift: np.ndarray) -> onnx.ModelProto:
    """The flip-averaged graph around `model` (input `images`, output `output0`); `shift` is the
    per-class logit subtracted after averaging."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inp, out = g.input[0].name, g.output[0].name
    # The detector now reads the stacked batch and writes the stacked raw output.
    for node in g.node:
        node.input[:] = ["tta_both" if n == inp else n for n in node.input]
        node.output[:] = ["tta_raw" if n == out else n for n in node.output]
    big = np.iinfo(np.int64).max
    consts = {
        "tta_neg1": np.array([-1], np.int64),
        "tta_min": np.array([-big], np.int64),
        "tta_ax3": np.array([3], np.int64),
        "tta_ax1": np.array([1], np.int64),
        "tta_grid": np.array([0, 4 + NC, rows, cols], np.int64),
        "tta_flat": np.array([0, 4 + NC, rows * cols], np.int64),
        # cx -> width - cx; cy, w, h and the scores unchanged.
        "tta_sign": np.array([-1] + [1] * (3 + NC), np.float32).reshape(1, 4 + NC, 1),
        "tta_offset": np.array([width] + [0] * (3 + NC), np.float32).reshape(1, 4 + NC, 1),
        "tta_half": np.array(0.5, np.float32),
        "tta_zero": np.array([0], np.int64),
        "tta_one_i": np.array([1], np.int64),
        "tta_max": np.array([big], np.int64),
        "tta_four": np.array([4], np.int64),
        "tta_end": np.array([4 + NC], np.int64),
        "tta_eps": np.array(EPS, np.float32),
        "tta_one_eps": np.array(1.0 - EPS, np.float32),
        "tta_one": np.array(1.0, np.float32),
        "tta_shift": shift.astype(np.float32).reshape(1, NC, 1),
    }
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    pre = [
        helper.make_node("Slice", [inp, "tta_neg1", "tta_min", "tta_ax3", "tta_neg1"], ["tta_mirror"]),
        helper.make_node("Concat", [inp, "tta_mirror"], ["tta_both"], axis=0),
    ]
    post = [
        # The first N rows are the tiles, the next N their mirrors (N from the input's shape).
        helper.make_node("Shape", [inp], ["tta_shape"]),
        helper.make_node("Slice", ["tta_shape", "tta_zero", "tta_one_i", "tta_zero"], ["tta_n"]),
        helper.make_node("Slice", ["tta_raw", "tta_zero", "tta_n", "tta_zero"], ["tta_a"]),
        helper.make_node("Slice", ["tta_raw", "tta_n", "tta_max", "tta_zero"], ["tta_b"]),
        helper.make_node("Reshape", ["tta_b", "tta_grid"], ["tta_b_grid"]),
        helper.make_node("Slice", ["tta_b_grid", "tta_neg1", "tta_min", "tta_ax3", "tta_neg1"], ["tta_b_back"]),
        helper.make_node("Reshape", ["tta_b_back", "tta_flat"], ["tta_b_flat"]),
        helper.make_node("Mul", ["tta_b_flat", "tta_sign"], ["tta_b_signed"]),
        helper.make_node("Add", ["tta_b_signed", "tta_offset"], ["tta_b_unflipped"]),
        helper.make_node("Add", ["tta_a", "tta_b_unflipped"], ["tta_sum"]),
        helper.make_node("Mul", ["tta_sum", "tta_half"], ["tta_mean"]),
        helper.make_node("Slice", ["tta_mean", "tta_zero", "tta_four", "tta_ax1"], ["tta_boxes"]),
        helper.make_node("Slice", ["tta_mean", "tta_four", "tta_end", "tta_ax1"], ["tta_p"]),
        helper.make_node("Clip", ["tta_p", "tta_eps", "tta_one_eps"], ["tta_pc"]),
        helper.make_node("Sub", ["tta_one", "tta_pc"], ["tta_q"]),
        helper.make_node("Div", ["tta_pc", "tta_q"], ["tta_odds"]),
        helper.make_node("Log", ["tta_odds"], ["tta_logit"]),
        helper.make_node("Sub", ["tta_logit", "tta_shift"], ["tta_shifted"]),
        helper.make_node("Sigmoid", ["tta_shifted"], ["tta_scores"]),
        helper.make_node("Concat", ["tta_boxes", "tta_scores"], [out], axis=1),
    ]
    nodes = pre + list(g.node) + post
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(m, full_check=True)
    return m


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: np.ndarray, mirror: bool = False, batch: int = 16) -> np.ndarray:
    """Outputs for float16 inputs, batch by batch (a val export is ~8 GB as float16), each batch
    mirrored left to right first when `mirror`."""
    outs = []
    for i in range(0, len(x), batch):
        b = x[i : i + batch].astype(np.float32)
        outs.append(sess.run(None, {"images": np.ascontiguousarray(b[..., ::-1]) if mirror else b})[0])
    return np.concatenate(outs)


def reference(single: np.ndarray, mirrored: np.ndarray, width: int, rows: int, cols: int, shift: np.ndarray) -> np.ndarray:
    """The same average written in NumPy from two plain runs of the original model."""
    b = mirrored.reshape(len(mirrored), 4 + NC, rows, cols)[..., ::-1].reshape(len(mirrored), 4 + NC, rows * cols).copy()
    b[:, 0] = width - b[:, 0]
    mean = 0.5 * (single + b)
    p = np.clip(mean[:, 4:], EPS, 1 - EPS)
    logit = np.log(p / (1 - p)) - shift.reshape(1, NC, 1)
    return np.concatenate([mean[:, :4], 1 / (1 + np.exp(-logit))], axis=1)


def any_threat(scores: dict[str, np.ndarray], truth: dict[str, set], thresholds: np.ndarray) -> tuple[float, float]:
    fire = {c: bool((s > thresholds).any()) for c, s in scores.items()}
    pos = [fire[c] for c, k in truth.items() if k]
    neg = [fire[c] for c, k in truth.items() if not k]
    return float(np.mean(pos)), float(np.mean(neg))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", type=Path, required=True, help="the trained detector's ONNX (one output level)")
    ap.add_argument("--spec", type=Path, required=True, help="its model spec (input size, version)")
    ap.add_argument("--val", type=Path, required=True, help="`nii-atr tiles` export of the val split")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--val-rate", type=float, default=0.005, help="per-class false-alarm share on val")
    ap.add_argument("--version", required=True)
    args = ap.parse_args()
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    spec_text = args.spec.read_text()
    spec = tomllib.loads(spec_text)
    width, height = spec["input"]["width"], spec["input"]["height"]
    base = onnx.load(str(args.model))
    rows, cols, stride = grid_of(base, width, height)
    log(f"{args.model}: {rows} x {cols} anchors at stride {stride} on a {width} x {height} input")

    val = load_tiles(args.val)
    truth: dict[str, set] = {r["case_id"]: set() for r in val.records}
    for r, b in zip(val.records, val.boxes):
        truth[r["case_id"]].update(int(c) for c in b[:, 0])
    log(f"val: {len(val)} inputs from {len(truth)} cases")

    # The single-view model on val, at its own shipped points (0.5 after its offsets).
    plain = session(base)
    single = run(plain, val.x)
    mirrored = run(plain, val.x, mirror=True)
    sc1 = scan_class_max(single, val.records)
    pd1, pfa1 = any_threat(sc1, truth, np.full(NC, 0.5))
    log(f"val, one view at its points: any-threat Pd {pd1:.3f} Pfa {pfa1:.3f}")

    # Flip-averaged, unshifted: choose the points on val, as detector.py does.
    unshifted = reference(single, mirrored, width, rows, cols, np.zeros(NC, np.float32))
    shift, thresholds = choose_offsets(scan_class_max(unshifted, val.records), truth, args.val_rate)
    for row in thresholds:
        log(f"  {row['class']:>20}: threshold {row['threshold']:.3f}  val Pd {row['val_pd']:.3f} "
            f"Pfa {row['val_pfa']:.3f} ({row['val_scans_with']} / {row['val_scans_without']} scans)")
    tta = build(base, width, rows, cols, shift)
    want = reference(single, mirrored, width, rows, cols, shift)
    got = run(session(tta), val.x)
    d_box = float(np.abs(got[:, :4] - want[:, :4]).max())
    d_score = float(np.abs(got[:, 4:] - want[:, 4:]).max())
    ok = d_box <= 1e-3 and d_score <= 1e-5
    log(f"flip graph vs NumPy average of two runs on {len(val)} val inputs: max |d box| {d_box:.2e} px (tol 1e-3), "
        f"max |d score| {d_score:.2e} (tol 1e-5): {'ok' if ok else 'FAILED'}")
    if not ok:
        raise SystemExit("the flip-averaged graph disagrees with its NumPy reference")
    pd2, pfa2 = any_threat(scan_class_max(got, val.records), truth, np.full(NC, 0.5))
    log(f"val, flip-averaged at its points: any-threat Pd {pd2:.3f} Pfa {pfa2:.3f}")

    onnx_path = args.out / "model.onnx"
    onnx.save(tta, str(onnx_path))
    head, _, rest = spec_text.partition("[input]")
    head = "\n".join(f'version = "{args.version}"' if line.startswith("version =") else line
                     for line in head.splitlines())
    head = head.replace(
        "# Scores are shifted per class",
        f"# Version {args.version}: version {spec['version']}'s weights run on the tile and its mirror image,\n"
        "# averaged per anchor (models/train/flip_tta.py).\n# Scores are shifted per class")
    (args.out / "model.toml").write_text(head + "\n[input]" + rest)
    write_json(args.out / "flip_tta.json", {
        "base_model": str(args.model), "base_version": spec["version"], "version": args.version,
        "grid": [rows, cols], "stride": stride, "val_export": str(args.val), "val_rate": args.val_rate,
        "val_thresholds": thresholds,
        "val_any_threat": {"one_view": {"pd": pd1, "pfa": pfa1}, "flip_averaged": {"pd": pd2, "pfa": pfa2}},
        "onnx_check": {"inputs": len(val), "max_abs_box_px": d_box, "max_abs_score": d_score,
                       "box_tol_px": 1e-3, "score_tol": 1e-5},
        "onnx_bytes": onnx_path.stat().st_size,
    })
    log(f"done: {onnx_path} ({onnx_path.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
