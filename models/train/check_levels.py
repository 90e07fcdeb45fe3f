"""Checks of `detector.py`'s output levels that fail loudly (run with the training venv; not part
of `make test`, which needs no PyTorch):

- each box is assigned on exactly the level whose scale range holds its longer side, ignore
  regions on every level, and a single level assigns as `assign` alone does;
- the export's anchors are the levels' cells, finest first, and its boxes are centred on them;
- the ONNX export of a two-level detector matches PyTorch (the tolerances `detector.py` uses);
- separate level heads (`--level-heads separate`): given the shared head's weights they give the
  shared detector's outputs, the single-level model keeps its parameter names (older `detector.pt`
  files load), and each level's losses are normalised by that level's own positives.

    ../../.cache/train-venv/bin/python check_levels.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from detector import (NC, Detector, Exported, assign, assign_levels, check_onnx, export_onnx, focal, giou_loss,
                      grid_centres, level_losses, level_slices, scale_ranges)


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
    check_separate_heads(det, x)
    check_level_losses()
    print("check_levels: all checks passed")


def check_separate_heads(shared: Detector, x: torch.Tensor) -> None:
    sep = Detector(stride=(4, 8), separate_heads=True).eval()
    assert set(Detector(stride=8, separate_heads=True).state_dict()) == set(Detector(stride=8).state_dict()), \
        "one level must keep the shared head's parameter names"
    # Load the shared weights into every level's head: the outputs must not change.
    state = shared.state_dict()
    for k, v in list(state.items()):
        for name, extra in (("head.", "heads_extra.0."), ("cls.", "cls_extra.0."), ("box.", "box_extra.0.")):
            if k.startswith(name):
                state[extra + k[len(name):]] = v
    sep.load_state_dict(state)
    with torch.no_grad():
        a, b = shared(x), sep(x)
    assert all(torch.equal(p, q) for p, q in zip(a, b)), "separate heads with shared weights differ"
    # A different stride-8 head changes stride 8's outputs only.
    with torch.no_grad():
        sep.box_extra[0].bias += 0.5
        logits, ltrb = sep(x)
    assert torch.equal(ltrb[..., :4096], a[1][..., :4096]) and not torch.allclose(ltrb[..., 4096:], a[1][..., 4096:])
    assert torch.equal(logits, a[0])


def check_level_losses() -> None:
    torch.manual_seed(1)
    boxes = [np.array([[2, 50, 50, 90, 70], [3, 120, 120, 220, 180]], np.float32),
             np.array([[2, 10, 10, 30, 40]], np.float32)]
    cls_t, box_t, pos, care = assign_levels(boxes, (4, 8), 256)
    n, a = 2, 5120
    logits, ltrb = torch.randn(n, a, NC), torch.rand(n, a, 4) * 30 + 1
    centres = torch.cat([grid_centres(64, 64, 4), grid_centres(32, 32, 8)])
    levels = level_slices((4, 8), 256)
    assert levels == [slice(0, 4096), slice(4096, 5120)]
    # One range: the shared-head recipe, normalised by every positive.
    npos = float(pos.sum())
    c = centres.unsqueeze(0).expand(n, -1, -1)[pos]
    want = (focal(logits, cls_t, care) / npos, giou_loss(ltrb[pos], c, box_t[pos]).sum() / npos)
    got = level_losses(logits, ltrb, cls_t, box_t, pos, care, centres, [slice(None)])
    assert all(torch.allclose(g, w) for g, w in zip(got, want))
    # Per level: the mean of each level's own normalised losses, written out by hand.
    parts = []
    for sl in levels:
        p, cen = pos[:, sl], centres[sl]
        k = float(p.sum())
        assert k > 0
        cc = cen.unsqueeze(0).expand(n, -1, -1)[p]
        parts.append((focal(logits[:, sl], cls_t[:, sl], care[:, sl]) / k,
                      giou_loss(ltrb[:, sl][p], cc, box_t[:, sl][p]).sum() / k))
    got = level_losses(logits, ltrb, cls_t, box_t, pos, care, centres, levels)
    assert torch.allclose(got[0], (parts[0][0] + parts[1][0]) / 2) and torch.allclose(got[1], (parts[0][1] + parts[1][1]) / 2)


if __name__ == "__main__":
    main()
