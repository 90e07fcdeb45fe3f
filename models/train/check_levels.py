"""Checks of `detector.py`'s output levels that fail loudly (run with the training venv; not part
of `make test`, which needs no PyTorch):

- each box is assigned on exactly the level whose scale range holds its longer side, ignore
  regions on every level, and a single level assigns as `assign` alone does;
- the export's anchors are the levels' cells, finest first, and its boxes are centred on them;
- the ONNX export of a two-level detector matches PyTorch (the tolerances `detector.py` uses).

    ../../.cache/train-venv/bin/python check_levels.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from detector import NC, Detector, Exported, assign, assign_levels, check_onnx, export_onnx, grid_centres, scale_ranges


def main() -> None:
    torch.manual_seed(0)
    assert scale_ranges((4, 8)) == [(0.0, 64.0), (64.0, float("inf"))]
    assert scale_ranges((4, 8, 16)) == [(0.0, 64.0), (64.0, 128.0), (128.0, float("inf"))]
    # A 40 x 20 px pistol (class 2), a 100 x 60 px box (class 3), a 4 px thin ignore region.
    boxes = [np.array([[2, 50, 50, 90, 70], [3, 120, 120, 220, 180], [-1, 0, 200, 256, 204]], np.float32)]
    cls_t, box_t, pos, care = assign_levels(boxes, (4, 8), 256)
    assert cls_t.shape == (1, 64 * 64 + 32 * 32, NC)
    l4, l8 = slice(0, 4096), slice(4096, 5120)
    assert pos[0, l4].sum() > 0 and set(cls_t[0, l4][pos[0, l4]].argmax(1).tolist()) == {2}, "pistol not on stride 4 alone"
    assert pos[0, l8].sum() > 0 and set(cls_t[0, l8][pos[0, l8]].argmax(1).tolist()) == {3}, "100 px box not on stride 8 alone"
    assert (~care[0, l4]).sum() > 0, "ignore region left out of stride 4"
    single = assign_levels(boxes, (8,), 256)
    alone = assign(boxes, grid_centres(32, 32, 8), 8)
    assert all(torch.equal(a, b) for a, b in zip(single, alone)), "one level must assign as assign() does"

    det = Detector(stride=(4, 8)).eval()
    x = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        out = Exported(det, torch.zeros(NC))(x)
        logits, ltrb = det(x)
    assert out.shape == (2, 4 + NC, 5120)
    c = det.centres(256, 256)
    assert torch.equal(c[:4096], grid_centres(64, 64, 4)) and torch.equal(c[4096:], grid_centres(32, 32, 8))
    # Box centre = anchor centre + (r - l) / 2: recompute from the raw distances.
    cx = c[:, 0] + 0.5 * (ltrb[:, 2] - ltrb[:, 0])
    assert torch.allclose(out[:, 0], cx, atol=1e-4)
    assert torch.allclose(out[:, 4:], torch.sigmoid(logits), atol=1e-6)

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "two-level.onnx"
        exported = Exported(det, torch.randn(NC))
        export_onnx(exported, path, x[:1].numpy())
        check_onnx(exported, path, np.random.default_rng(0).normal(size=(8, 3, 256, 256)).astype(np.float16),
                   score_tol=1e-4, box_tol=1e-2)
    print("check_levels: all checks passed")


if __name__ == "__main__":
    main()
