"""Shared helpers: deterministic setup, loading `nii-atr tiles` exports, small metrics."""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

# The generator's threat classes in COCO category order (src/synth/threats.rs CATEGORIES).
CATEGORIES = ["narcotics", "cigarettes", "firearm", "vehicle", "ivory", "high_z", "hidden_compartment"]
# What each class means for the officer (nii-atr ThreatCategory).
THREATS = {
    "narcotics": "narcotics",
    "cigarettes": "tobacco",
    "firearm": "weapon",
    "vehicle": "contraband",
    "ivory": "contraband",
    "high_z": "shielding",
    "hidden_compartment": "contraband",
}


def setup(seed: int, threads: int) -> None:
    """Seeds every generator and pins the thread count (the machine has 2 shared cores)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Tiles:
    """Every input of one export, as float16 in memory, with the index records."""

    x: np.ndarray  # [n, C, H, W] float16
    records: list[dict]
    summary: dict
    boxes: list[np.ndarray] = field(default_factory=list)  # per tile [m, 5]: class, x1, y1, x2, y2

    def __len__(self) -> int:
        return len(self.records)


def load_tiles(folder: Path, want=lambda r: True) -> Tiles:
    """Loads the `.npy` files and `index.jsonl` of a `nii-atr tiles` export; `want` filters records."""
    folder = Path(folder)
    summary = json.loads((folder / "export.json").read_text())
    records = [json.loads(line) for line in (folder / "index.jsonl").read_text().splitlines() if line.strip()]
    by_file: dict[str, list[dict]] = {}
    for r in records:
        if want(r):
            by_file.setdefault(r["file"], []).append(r)
    c, h, w = summary["input"]
    n = sum(len(v) for v in by_file.values())
    x = np.empty((n, c, h, w), dtype=np.float16)
    kept: list[dict] = []
    for file in sorted(by_file):
        arr = np.load(folder / file, mmap_mode="r")
        rows = by_file[file]
        idx = [r["index"] for r in rows]
        x[len(kept) : len(kept) + len(rows)] = arr[idx].astype(np.float16)
        kept.extend(rows)
    boxes = [
        np.array([[b["class_id"], *b["bbox"]] for b in r["boxes"]], dtype=np.float32).reshape(-1, 5) for r in kept
    ]
    return Tiles(x=x, records=kept, summary=summary, boxes=boxes)


def pitch_line(summary: dict) -> str:
    """`pixel_pitch_mm = X` for a spec's `[input]` (after a newline) when the tiles export had one
    square pitch, so the engine resamples scans of other scanners to it; empty otherwise."""
    p = summary.get("pixel_pitch_mm")
    if not p or abs(p[0] - p[1]) > 1e-3 * p[0]:
        return ""
    return f"\npixel_pitch_mm = {round(float(p[0]), 4):g}"


def lr_at(progress: float, base: float) -> float:
    """Linear warm-up over the first 5 %, then cosine down to 1 % of `base`."""
    if progress < 0.05:
        return base * (0.1 + 0.9 * progress / 0.05)
    t = min(1.0, (progress - 0.05) / 0.95)
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC: P(score of a positive > score of a negative), ties count half."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    r_pos = ranks[: len(pos)].sum()
    return float((r_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def write_json(path: Path, value) -> None:
    Path(path).write_text(json.dumps(value, indent=2) + "\n")
