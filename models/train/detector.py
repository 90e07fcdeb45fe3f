"""Concealment detector: a small anchor-free (FCOS-style, centre-sampled) detector for the seven
threat classes of the generator, exported in the YOLOv8 output layout [N, 4 + nc, A].

Input: the dual-energy channel recipe (A_high, A_low, R) of the spec, as `nii-atr tiles`
exported it. One output level at stride 8 fed by a small FPN (strides 8, 16, 32), so one
anchor per 8 x 8 cell: 1024 anchors on a 256 x 256 tile.

    python detector.py --train <tiles/train> --val <tiles/val> --out models/concealment-det
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import CATEGORIES, THREATS, Tiles, load_tiles, log, lr_at, setup, write_json

STRIDE = 8
NC = len(CATEGORIES)


def cbr(ci: int, co: int, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, 3, s, 1, bias=False), nn.BatchNorm2d(co), nn.SiLU(inplace=True))


class Detector(nn.Module):
    def __init__(self, width: int = 48):
        super().__init__()
        self.stem = cbr(3, 16, 2)
        # Lean at high resolution: the CPU budget (2 cores, < 1.5 s a 40 ft scan) is spent at stride 8+.
        self.s2 = cbr(16, 32, 2)
        self.s3 = nn.Sequential(cbr(32, 64, 2), cbr(64, 64))
        self.s4 = nn.Sequential(cbr(64, 96, 2), cbr(96, 96))
        self.s5 = nn.Sequential(cbr(96, 128, 2), cbr(128, 128))
        self.l5 = nn.Conv2d(128, width, 1)
        self.l4 = nn.Conv2d(96, width, 1)
        self.l3 = nn.Conv2d(64, width, 1)
        self.f4 = cbr(width, width)
        self.f3 = cbr(width, width)
        self.head = cbr(width, width)
        self.cls = nn.Conv2d(width, NC, 1)
        self.box = nn.Conv2d(width, 4, 1)
        # Focal-loss prior: start every class at p = 0.01 so background does not swamp training.
        nn.init.constant_(self.cls.bias, -math.log(99.0))
        nn.init.zeros_(self.box.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits [N, nc, H/8, W/8] and box distances (l, t, r, b) in pixels."""
        c3 = self.s3(self.s2(self.stem(x)))
        c4 = self.s4(c3)
        c5 = self.s5(c4)
        p4 = self.f4(self.l4(c4) + F.interpolate(self.l5(c5), size=c4.shape[-2:], mode="nearest"))
        p3 = self.f3(self.l3(c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest"))
        h = self.head(p3)
        ltrb = torch.exp(self.box(h).clamp(-6.0, 6.0)) * STRIDE
        return self.cls(h), ltrb


class Exported(nn.Module):
    """YOLOv8 layout: rows cx, cy, w, h (input pixels), then one sigmoid score per class.

    `offsets` (per-class logit shifts chosen on val) move each class's operating point to 0.5.
    """

    def __init__(self, det: Detector, offsets: torch.Tensor):
        super().__init__()
        self.det = det
        self.register_buffer("offsets", offsets.view(1, NC, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits, ltrb = self.det(images)
        n, _, h, w = logits.shape
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) * STRIDE
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) * STRIDE
        cy = ys.view(h, 1).expand(h, w).reshape(1, 1, h * w)
        cx = xs.view(1, w).expand(h, w).reshape(1, 1, h * w)
        d = ltrb.reshape(n, 4, h * w)
        l, t, r, b = d[:, 0:1], d[:, 1:2], d[:, 2:3], d[:, 3:4]
        box = torch.cat([cx + 0.5 * (r - l), cy + 0.5 * (b - t), l + r, t + b], dim=1)
        scores = torch.sigmoid(logits.reshape(n, NC, h * w) - self.offsets)
        return torch.cat([box, scores], dim=1)


def grid_centres(h: int, w: int) -> torch.Tensor:
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * STRIDE
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * STRIDE
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # [A, 2]


def assign(boxes: np.ndarray, centres: torch.Tensor, radius: float = 2.5):
    """Centre sampling: a cell is positive for a box when its centre lies inside the box and
    within `radius` strides of the box centre; the cell holding the centre of a box too small to
    contain any cell centre is positive too. Ties go to the smallest box."""
    a = centres.shape[0]
    cls_t = torch.zeros(a, NC)
    box_t = torch.zeros(a, 4)
    pos = torch.zeros(a, dtype=torch.bool)
    if len(boxes) == 0:
        return cls_t, box_t, pos
    b = torch.from_numpy(boxes)
    x1, y1, x2, y2 = b[:, 1], b[:, 2], b[:, 3], b[:, 4]
    bcx, bcy = 0.5 * (x1 + x2), 0.5 * (y1 + y2)
    cx, cy = centres[:, 0:1], centres[:, 1:2]  # [A, 1]
    inside = (cx > x1) & (cx < x2) & (cy > y1) & (cy < y2)
    r = radius * STRIDE
    near = ((cx - bcx).abs() < r) & ((cy - bcy).abs() < r)
    cand = inside & near  # [A, M]
    # Boxes that caught no cell: the cell holding their centre.
    w_cells = int(round(math.sqrt(a)))  # square inputs only, as trained
    for k in range(len(boxes)):
        if not cand[:, k].any():
            j = min(int(bcx[k] // STRIDE), w_cells - 1)
            i = min(int(bcy[k] // STRIDE), w_cells - 1)
            cand[i * w_cells + j, k] = True
    area = ((x2 - x1) * (y2 - y1)).view(1, -1).expand(a, -1).clone()
    area[~cand] = float("inf")
    best_area, best = area.min(dim=1)
    pos = torch.isfinite(best_area)
    idx = best[pos]
    cls_t[pos, b[idx, 0].long()] = 1.0
    box_t[pos] = b[idx, 1:5]
    return cls_t, box_t, pos


def giou_loss(pred_ltrb: torch.Tensor, centres: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    px1, py1 = centres[:, 0] - pred_ltrb[:, 0], centres[:, 1] - pred_ltrb[:, 1]
    px2, py2 = centres[:, 0] + pred_ltrb[:, 2], centres[:, 1] + pred_ltrb[:, 3]
    tx1, ty1, tx2, ty2 = target.unbind(1)
    iw = (torch.min(px2, tx2) - torch.max(px1, tx1)).clamp(min=0)
    ih = (torch.min(py2, ty2) - torch.max(py1, ty1)).clamp(min=0)
    inter = iw * ih
    union = (px2 - px1) * (py2 - py1) + (tx2 - tx1) * (ty2 - ty1) - inter
    iou = inter / union.clamp(min=1e-6)
    cw = torch.max(px2, tx2) - torch.min(px1, tx1)
    ch = torch.max(py2, ty2) - torch.min(py1, ty1)
    hull = (cw * ch).clamp(min=1e-6)
    return 1.0 - (iou - (hull - union) / hull)


def focal(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    w = alpha * target + (1 - alpha) * (1 - target)
    return (w * (1 - pt) ** gamma * ce).sum()


def hflip(x: np.ndarray, boxes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Mirror along the scan direction (a truck driven through the other way round)."""
    b = boxes.copy()
    if len(b):
        b[:, 1], b[:, 3] = width - boxes[:, 3], width - boxes[:, 1]
    return x[..., ::-1].copy(), b


def crop(x: np.ndarray, boxes: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A `size` x `size` window of a tile, on a box with probability 0.7, with its boxes clipped by
    the export's rule (both sides >= 4 px, and >= 20 % of the box or >= 1024 px kept)."""
    _, h, w = x.shape
    if size >= h and size >= w:
        return x, boxes
    if len(boxes) and rng.random() < 0.7:
        b = boxes[rng.integers(len(boxes))]
        cx, cy = 0.5 * (b[1] + b[3]), 0.5 * (b[2] + b[4])
        x0 = int(np.clip(cx - rng.uniform(0.15, 0.85) * size, 0, w - size))
        y0 = int(np.clip(cy - rng.uniform(0.15, 0.85) * size, 0, h - size))
    else:
        x0, y0 = int(rng.integers(0, w - size + 1)), int(rng.integers(0, h - size + 1))
    out = []
    for c, bx1, by1, bx2, by2 in boxes:
        nx1, ny1 = max(bx1, x0) - x0, max(by1, y0) - y0
        nx2, ny2 = min(bx2, x0 + size) - x0, min(by2, y0 + size) - y0
        bw, bh = nx2 - nx1, ny2 - ny1
        if bw < 4 or bh < 4:
            continue
        vis = bw * bh / max((bx2 - bx1) * (by2 - by1), 1e-6)
        if vis >= 0.2 or bw * bh >= 1024:
            out.append([c, nx1, ny1, nx2, ny2])
    return x[:, y0 : y0 + size, x0 : x0 + size], np.array(out, np.float32).reshape(-1, 5)


def train(tiles: Tiles, epochs: int, batch: int, lr: float, seed: int, budget_s: float,
          crop_size: int, crop_share: float) -> tuple[Detector, dict]:
    """AdamW with warm-up and cosine decay over `epochs` or the time budget, whichever ends
    first (progress is the larger of the two shares, so the schedule always completes). While
    progress < `crop_share`, batches are `crop_size` windows (4x cheaper at 128, 4x larger
    batches); after that whole tiles, so large objects are learnt at full extent."""
    model = Detector()
    _, h, w = tiles.x.shape[1:]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    start = time.time()
    history = []
    step, seen, progress = 0, 0.0, 0.0
    sums, nsum, epoch_mark = np.zeros(3), 0, 0
    order, pos_in_order = rng.permutation(len(tiles)), 0
    while progress < 1.0:
        cropping = progress < crop_share
        size = crop_size if cropping else max(h, w)
        bsz = batch * ((max(h, w) // crop_size) ** 2 if cropping else 1)
        centres = grid_centres(size // STRIDE, size // STRIDE)
        if pos_in_order + bsz > len(order):
            order, pos_in_order = rng.permutation(len(tiles)), 0
        idx = order[pos_in_order : pos_in_order + bsz]
        pos_in_order += bsz
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, lr)
        model.train()
        xs, cls_ts, box_ts, pos_ts = [], [], [], []
        for i in idx:
            x, bx = crop(tiles.x[i], tiles.boxes[i], size, rng)
            x = x.astype(np.float32)
            if rng.random() < 0.5:
                x, bx = hflip(x, bx, size)
            ct, bt, pt = assign(bx, centres)
            xs.append(torch.from_numpy(np.ascontiguousarray(x)))
            cls_ts.append(ct)
            box_ts.append(bt)
            pos_ts.append(pt)
        x = torch.stack(xs)
        cls_t, box_t, pos = torch.stack(cls_ts), torch.stack(box_ts), torch.stack(pos_ts)
        logits, ltrb = model(x)
        n = x.shape[0]
        logits = logits.reshape(n, NC, -1).permute(0, 2, 1)
        ltrb = ltrb.reshape(n, 4, -1).permute(0, 2, 1)
        npos = max(1.0, float(pos.sum()))
        l_cls = focal(logits, cls_t) / npos
        if pos.any():
            c = centres.unsqueeze(0).expand(n, -1, -1)[pos]
            l_box = giou_loss(ltrb[pos], c, box_t[pos]).sum() / npos
        else:
            l_box = torch.zeros(())
        loss = l_cls + 2.0 * l_box
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        step += 1
        # Epochs counted in whole-tile equivalents (a 128 window is a quarter tile).
        seen += n * (size * size) / (h * w)
        progress = max(seen / (epochs * len(tiles)), (time.time() - start) / budget_s)
        sums += [loss.item(), l_cls.item(), l_box.item()]
        nsum += 1
        if step % 25 == 0:
            log(f"step {step} ({size} px, lr {lr_at(progress, lr):.2e}) progress {progress:.3f} loss {sums[0] / nsum:.3f} "
                f"(cls {sums[1] / nsum:.3f} box {sums[2] / nsum:.3f}) {time.time() - start:.0f} s")
        if int(seen // len(tiles)) > epoch_mark or progress >= 1.0:
            epoch_mark = int(seen // len(tiles))
            m = sums / max(1, nsum)
            history.append({"epochs_seen": round(seen / len(tiles), 3), "input": size, "loss": m[0], "cls": m[1],
                            "box": m[2], "seconds": round(time.time() - start, 1)})
            log(f"{seen / len(tiles):.2f} epochs: loss {m[0]:.3f} cls {m[1]:.3f} box {m[2]:.3f}")
            sums, nsum = np.zeros(3), 0
    return model, {"history": history, "seconds": time.time() - start, "steps": step,
                   "epochs_seen": seen / len(tiles), "stopped_by_budget": seen < epochs * len(tiles)}


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, batch: int = 32) -> np.ndarray:
    """Exported-layout outputs [n, 4 + nc, A] for float16 tiles."""
    model.eval()
    outs = []
    for i in range(0, len(x), batch):
        outs.append(model(torch.from_numpy(x[i : i + batch].astype(np.float32))).numpy())
    return np.concatenate(outs)


def scan_class_max(out: np.ndarray, records: list[dict]) -> dict[str, np.ndarray]:
    """Per case, the highest score of each class over every input of the case (the engine's
    scan score before NMS, which never lowers a maximum)."""
    res: dict[str, np.ndarray] = {}
    best = out[:, 4:, :].max(axis=2)  # [n, nc]
    for r, s in zip(records, best):
        cur = res.get(r["case_id"])
        res[r["case_id"]] = s if cur is None else np.maximum(cur, s)
    return res


def choose_offsets(val_scores: dict[str, np.ndarray], val_classes: dict[str, set], rate: float) -> tuple[np.ndarray, list]:
    """Per class, the score above which at most `rate` of val scans without that class fire
    (their highest class score), as a logit; the exported head subtracts it, so 0.5 becomes
    each class's operating point."""
    offsets, rows = [], []
    for k, name in enumerate(CATEGORIES):
        neg = np.array([s[k] for cid, s in val_scores.items() if k not in val_classes[cid]])
        pos = np.array([s[k] for cid, s in val_scores.items() if k in val_classes[cid]])
        t = float(np.quantile(neg, 1.0 - rate)) if len(neg) else 0.5
        t = min(max(t, 0.05), 0.95)
        pd = float((pos > t).mean()) if len(pos) else float("nan")
        pfa = float((neg > t).mean()) if len(neg) else float("nan")
        offsets.append(math.log(t / (1 - t)))
        rows.append({"class": name, "threshold": t, "val_scans_with": len(pos), "val_scans_without": len(neg),
                     "val_pd": pd, "val_pfa": pfa})
    return np.array(offsets, dtype=np.float32), rows


def export_onnx(model: nn.Module, path: Path, sample: np.ndarray) -> None:
    model.eval()
    x = torch.from_numpy(sample.astype(np.float32))
    torch.onnx.export(
        model, (x,), str(path), input_names=["images"], output_names=["output0"],
        dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}}, opset_version=17,
        do_constant_folding=True, dynamo=False,
    )


def check_onnx(model: nn.Module, path: Path, x: np.ndarray, score_tol: float, box_tol: float) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"images": x[i : i + 8].astype(np.float32)})[0] for i in range(0, len(x), 8)])
    want = predict(model, x)
    d_box = float(np.abs(got[:, :4] - want[:, :4]).max())
    d_score = float(np.abs(got[:, 4:] - want[:, 4:]).max())
    ok = d_box <= box_tol and d_score <= score_tol
    log(f"ONNX Runtime vs PyTorch on {len(x)} val tiles: max |d box| {d_box:.2e} px (tol {box_tol}), "
        f"max |d score| {d_score:.2e} (tol {score_tol}): {'ok' if ok else 'FAILED'}")
    if not ok:
        raise SystemExit("exported detector disagrees with PyTorch")
    return {"tiles": len(x), "max_abs_box_px": d_box, "max_abs_score": d_score, "box_tol_px": box_tol,
            "score_tol": score_tol}


SPEC = """# Concealment detector (models/train/detector.py); model card: README.md beside this file.
schema_version = 1
name = "concealment-det"
version = "{version}"
task = "detect"
# Scores are shifted per class so that 0.5 is each class's operating point chosen on val:
# the {q_pct}% quantile of the class's top score over val scans without the class. The output
# floor is lower so that ROC curves and mAP see the whole score range.
score_threshold = {floor}

[input]
name = "images"
layout = "nchw"
width = {w}
height = {h}
channels = [
  {{ channel = "attenuation_high", mean = {m0}, std = {s0} }},
  {{ channel = "attenuation_low", mean = {m1}, std = {s1} }},
  {{ channel = "r_value", mean = {m2}, std = {s2} }},
]

[decoder]
kind = "yolov8"
output = "output0"
iou_threshold = 0.5
max_detections = 100
{classes}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--spec", type=Path, required=True, help="spec the tiles were exported with (input section)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=6)
    ap.add_argument("--crop", type=int, default=128, help="window size of the early epochs")
    ap.add_argument("--crop-share", type=float, default=0.7, help="share of epochs on windows")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-min", type=float, default=50.0, help="stop training after this many minutes")
    ap.add_argument("--val-rate", type=float, default=0.005, help="per-class false-alarm share on val")
    ap.add_argument("--floor", type=float, default=0.05)
    ap.add_argument("--version", default="1")
    args = ap.parse_args()
    setup(args.seed, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    train_tiles = load_tiles(args.train)
    log(f"train: {len(train_tiles)} inputs ({sum(len(b) > 0 for b in train_tiles.boxes)} with boxes, "
        f"{sum(len(b) for b in train_tiles.boxes)} boxes) from {train_tiles.summary['cases']} cases, "
        f"loaded in {time.time() - t0:.0f} s")
    model, info = train(train_tiles, args.epochs, args.batch, args.lr, args.seed, args.budget_min * 60,
                        args.crop, args.crop_share)
    del train_tiles
    torch.save(model.state_dict(), args.out / "detector.pt")

    val = load_tiles(args.val)
    log(f"val: {len(val)} inputs from {val.summary['cases']} cases")
    raw = Exported(model, torch.zeros(NC))
    out = predict(raw, val.x)
    scores = scan_class_max(out, val.records)
    truth = {}
    for r in val.records:
        truth.setdefault(r["case_id"], set())
    # Classes per val case come from the truth records the export kept (every box of every tile).
    for r, b in zip(val.records, val.boxes):
        truth[r["case_id"]].update(int(c) for c in b[:, 0])
    offsets, rows = choose_offsets(scores, truth, args.val_rate)
    for row in rows:
        log(f"  {row['class']:>20}: threshold {row['threshold']:.3f}  val Pd {row['val_pd']:.3f} "
            f"Pfa {row['val_pfa']:.3f} ({row['val_scans_with']} / {row['val_scans_without']} scans)")
    # Any-threat on val at the chosen points.
    pos_cases = [c for c, k in truth.items() if k]
    neg_cases = [c for c, k in truth.items() if not k]
    fire = {c: bool((scores[c] > np.array([r["threshold"] for r in rows])).any()) for c in scores}
    any_pd = float(np.mean([fire[c] for c in pos_cases])) if pos_cases else float("nan")
    any_pfa = float(np.mean([fire[c] for c in neg_cases])) if neg_cases else float("nan")
    log(f"val any-threat at the operating points: Pd {any_pd:.3f} on {len(pos_cases)} scans, "
        f"Pfa {any_pfa:.3f} on {len(neg_cases)} clean scans")

    exported = Exported(model, torch.from_numpy(offsets))
    onnx_path = args.out / "model.onnx"
    export_onnx(exported, onnx_path, val.x[:2])
    check = check_onnx(exported, onnx_path, val.x[: min(len(val), 64)], score_tol=1e-4, box_tol=1e-2)

    spec_in = args.spec.read_text()
    import tomllib

    inp = tomllib.loads(spec_in)["input"]
    ch = inp["channels"]
    classes = "".join(
        f'\n[[classes]]\nname = "{n}"\nthreat = "{THREATS[n]}"\n' for n in CATEGORIES
    )
    (args.out / "model.toml").write_text(SPEC.format(
        version=args.version, q_pct=f"{(1 - args.val_rate) * 100:g}", floor=args.floor, w=inp["width"], h=inp["height"],
        m0=ch[0].get("mean", 0.0), s0=ch[0].get("std", 1.0), m1=ch[1].get("mean", 0.0), s1=ch[1].get("std", 1.0),
        m2=ch[2].get("mean", 0.0), s2=ch[2].get("std", 1.0), classes=classes))
    params = sum(p.numel() for p in model.parameters())
    write_json(args.out / "training.json", {
        "params": params, "onnx_bytes": onnx_path.stat().st_size, "seed": args.seed, "epochs": args.epochs,
        "batch": args.batch, "lr": args.lr, "crop": args.crop, "crop_share": args.crop_share, "threads": args.threads, "train": info,
        "train_export": str(args.train), "val_export": str(args.val), "val_thresholds": rows,
        "val_any_threat": {"pd": any_pd, "pfa": any_pfa, "scans_with": len(pos_cases), "scans_without": len(neg_cases)},
        "onnx_check": check,
    })
    log(f"done: {params} parameters, {onnx_path.stat().st_size / 1e6:.2f} MB ONNX, total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
