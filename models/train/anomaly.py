"""Cargo anomaly model: a convolutional autoencoder trained on clean cargo tiles only, exported in
the anomalib 2.x layout (`anomaly_map` [N, 1, H/4, W/4], `pred_score` [N]).

The tile (A_high, A_low, R of the spec) is averaged down 4x, encoded to an 8 x 8 x 8 code
(a 24x squeeze) and decoded; the per-pixel squared error, smoothed over 5 x 5, is the raw
anomaly. Anything the clean cargo of training did not teach the decoder (a brick of cocaine
in tyres, a steel block, a false floor) reconstructs badly. The raw error is mapped to
(0, 1) by a logistic on its logarithm, centred on the clean-tile error distribution of train,
so the engine's region scores stay ordered; `pred_score` is the map's maximum.

    python anomaly.py --train <tiles/train> --val <tiles/val> --out models/cargo-anomaly
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import auroc, load_tiles, log, lr_at, setup, write_json

DOWN = 4


def cbr(ci: int, co: int, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, 3, s, 1, bias=False), nn.BatchNorm2d(co), nn.SiLU(inplace=True))


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(cbr(3, 24), cbr(24, 48, 2), cbr(48, 64, 2), cbr(64, 64, 2), nn.Conv2d(64, 8, 1))
        # The decoder stays light at full map resolution: inference cost is ~110 MFLOP a tile.
        self.dec = nn.Sequential(
            nn.Conv2d(8, 64, 1), nn.SiLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"), cbr(64, 64),
            nn.Upsample(scale_factor=2, mode="nearest"), cbr(64, 32),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(32, 3, 3, 1, 1),
        )

    def small(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, DOWN)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.small(x)
        return s, self.dec(self.enc(s))


def raw_error(model: AutoEncoder, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel error [N, 1, H/4, W/4], smoothed over 5 x 5."""
    s, r = model(x)
    e = ((s - r) ** 2).mean(dim=1, keepdim=True)
    return F.avg_pool2d(e, 5, stride=1, padding=2, count_include_pad=False)


class Exported(nn.Module):
    def __init__(self, model: AutoEncoder, centre: float, scale: float):
        super().__init__()
        self.model = model
        self.centre = centre
        self.scale = scale

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = raw_error(self.model, images)
        m = torch.sigmoid((torch.log(e + 1e-6) - self.centre) / self.scale)
        return m, m.amax(dim=(1, 2, 3))


def train(x: np.ndarray, epochs: int, batch: int, lr: float, seed: int, budget_s: float) -> tuple[AutoEncoder, dict]:
    """AdamW, warm-up then cosine over `epochs` or the time budget, whichever ends first."""
    model = AutoEncoder()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    start = time.time()
    history = []
    step, seen, progress = 0, 0, 0.0
    order, at, total, nsum, mark = rng.permutation(len(x)), 0, 0.0, 0, 0
    model.train()
    while progress < 1.0:
        if at + batch > len(order):
            order, at = rng.permutation(len(x)), 0
        xb = x[order[at : at + batch]].astype(np.float32)
        at += batch
        if rng.random() < 0.5:
            xb = xb[..., ::-1].copy()
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, lr)
        small, rec = model(torch.from_numpy(xb))
        loss = F.mse_loss(rec, small)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += len(xb)
        total += loss.item()
        nsum += 1
        progress = max(seen / (epochs * len(x)), (time.time() - start) / budget_s)
        if seen // len(x) > mark or progress >= 1.0:
            mark = seen // len(x)
            history.append({"epochs_seen": round(seen / len(x), 3), "mse": total / nsum,
                            "seconds": round(time.time() - start, 1)})
            log(f"anomaly {seen / len(x):.2f} epochs: mse {total / nsum:.4f}, {time.time() - start:.0f} s")
            total, nsum = 0.0, 0
    return model, {"history": history, "seconds": time.time() - start, "steps": step,
                   "epochs_seen": seen / len(x), "stopped_by_budget": seen < epochs * len(x)}


@torch.no_grad()
def run(model: nn.Module, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    maps, scores = [], []
    for i in range(0, len(x), batch):
        m, s = model(torch.from_numpy(x[i : i + batch].astype(np.float32)))
        maps.append(m.numpy())
        scores.append(s.numpy())
    return np.concatenate(maps), np.concatenate(scores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--spec", type=Path, required=True, help="spec the tiles were exported with (input section)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget-min", type=float, default=30.0)
    ap.add_argument("--val-rate", type=float, default=0.02, help="share of clean val scans allowed to flag")
    ap.add_argument("--version", default="1")
    args = ap.parse_args()
    setup(args.seed, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()

    # Clean cargo only: grid tiles no truth box touches (not even a dropped sliver).
    tr = load_tiles(args.train, lambda r: r["kind"] == "tile" and r["clean"])
    log(f"anomaly train: {len(tr)} clean tiles from {tr.summary['cases']} cases")
    model, info = train(tr.x, args.epochs, args.batch, args.lr, args.seed, args.budget_min * 60)
    raw = Exported(model, 0.0, 1.0)
    # Centre and spread of log error on clean train tiles fix the logistic.
    model.eval()
    with torch.no_grad():
        logs = []
        for i in range(0, len(tr), 64):
            e = raw_error(model, torch.from_numpy(tr.x[i : i + 64].astype(np.float32)))
            logs.append(torch.log(e + 1e-6).flatten().numpy()[::7])
        logs = np.concatenate(logs)
    centre, scale = float(np.quantile(logs, 0.99)), float(max(logs.std(), 1e-3))
    del tr
    torch.save(model.state_dict(), args.out / "autoencoder.pt")
    exported = Exported(model, centre, scale)

    val = load_tiles(args.val, lambda r: r["kind"] == "tile")
    maps, scores = run(exported, val.x)
    per_case: dict[str, float] = {}
    clean_case: dict[str, bool] = {}
    for r, s in zip(val.records, scores):
        per_case[r["case_id"]] = max(per_case.get(r["case_id"], 0.0), float(s))
        clean_case[r["case_id"]] = r["clean_case"]
    neg = np.array([v for c, v in per_case.items() if clean_case[c]])
    pos = np.array([v for c, v in per_case.items() if not clean_case[c]])
    val_auroc = auroc(pos, neg)
    # Threshold: the map value at which at most `val_rate` of clean val scans raise a region.
    thr = float(np.quantile(neg, 1.0 - args.val_rate)) if len(neg) else 0.5
    pd = float((pos > thr).mean()) if len(pos) else float("nan")
    log(f"val scan-level AUROC {val_auroc:.3f} ({len(pos)} threat / {len(neg)} clean scans); "
        f"threshold {thr:.4f}: Pd {pd:.3f}, Pfa {(neg > thr).mean():.3f}")

    onnx_path = args.out / "model.onnx"
    exported.eval()
    torch.onnx.export(
        exported, (torch.from_numpy(val.x[:2].astype(np.float32)),), str(onnx_path), input_names=["images"],
        output_names=["anomaly_map", "pred_score"],
        dynamic_axes={"images": {0: "batch"}, "anomaly_map": {0: "batch"}, "pred_score": {0: "batch"}},
        opset_version=17, do_constant_folding=True, dynamo=False,
    )
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    xs = val.x[:64].astype(np.float32)
    got_m, got_s = [], []
    for i in range(0, len(xs), 8):
        m, s = sess.run(None, {"images": xs[i : i + 8]})
        got_m.append(m)
        got_s.append(s)
    got_m, got_s = np.concatenate(got_m), np.concatenate(got_s)
    tol = 1e-4
    d_map, d_score = float(np.abs(got_m - maps[:64]).max()), float(np.abs(got_s - scores[:64]).max())
    ok = d_map <= tol and d_score <= tol
    log(f"ONNX Runtime vs PyTorch on {len(xs)} val tiles: max |d map| {d_map:.2e}, max |d score| {d_score:.2e} "
        f"(tol {tol}): {'ok' if ok else 'FAILED'}")
    if not ok:
        raise SystemExit("exported anomaly model disagrees with PyTorch")

    import tomllib

    inp = tomllib.loads(args.spec.read_text())["input"]
    ch = inp["channels"]
    chans = ",\n".join(
        f'  {{ channel = "{c["channel"]}", mean = {c.get("mean", 0.0)}, std = {c.get("std", 1.0)} }}' for c in ch
    )
    (args.out / "model.toml").write_text(f"""# Cargo anomaly model (models/train/anomaly.py); model card: README.md beside this file.
schema_version = 1
name = "cargo-anomaly"
version = "{args.version}"
task = "anomaly_map"

[input]
name = "images"
layout = "nchw"
width = {inp["width"]}
height = {inp["height"]}
channels = [
{chans},
]

[decoder]
kind = "anomalib"
map_output = "anomaly_map"
score_output = "pred_score"
# Map value above which a pixel is anomalous: at most {args.val_rate * 100:g}% of clean val scans reach it.
threshold = {thr:.5f}
""")
    params = sum(p.numel() for p in model.parameters())
    write_json(args.out / "training.json", {
        "params": params, "onnx_bytes": onnx_path.stat().st_size, "seed": args.seed, "epochs": args.epochs,
        "batch": args.batch, "lr": args.lr, "threads": args.threads, "train": info, "logistic": [centre, scale],
        "val": {"auroc": val_auroc, "threshold": thr, "pd": pd, "scans_threat": len(pos), "scans_clean": len(neg)},
        "onnx_check": {"tiles": len(xs), "max_abs_map": d_map, "max_abs_score": d_score, "tol": tol},
    })
    log(f"done: {params} parameters, total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
