"""Cargo anomaly model: a small segmentation network trained on clean cargo tiles only, with
foreign objects synthesised into them by the physics of transmission, exported in the anomalib
2.x layout (`anomaly_map` [N, 1, H/4, W/4], `pred_score` [N]).

Why not an autoencoder: the first shipped model reconstructed 4x-downsampled tiles, and its
largest errors sat on what every scan has (container corners, corrugations, the chassis), so
it ranked scans at chance. A reconstruction error does not know what an officer cares about:
something *added* to the load. This model learns exactly that, without threat labels, in the
spirit of DRAEM / CutPaste (anomalib ships DRAEM): it only ever sees clean cargo, into which
`add_objects` places random objects the way a transmission scanner sees them. Attenuation is
additive along the ray (A = sum of mu_i t_i), so a hidden object of areal density profile p
and material ratio k adds dA_high = p and dA_low = k p to whatever load is in front of and
behind it, displaces a little of that load, and brings the photon noise of the darker pixel.
The shapes (ellipsoids, slabs, bars, blobs of 6-200 px; `--max-object-px` raises the top),
thicknesses (0.08-3 in A_high) and material ratios (the span of A_low / A_high over clean
training pixels, widened 15 % each way) are drawn at random: none is taken from the
generator's threat catalogue, so the model answers "something is here that the load does not
explain" for kinds it has never seen.

`--coarse-share` (off by default; an experiment, see the model card) also shows the network
crops as a scanner of 1.4-2.2x the pitch records them after the engine resamples them back
(`coarser_scanner`, the engine's box-down / linear-up weights), so that resampled scans from
coarser scanners look normal to it. `--artefact-share` (off by default; tried, not shipped, see
the card) draws an interlaced linac's low-energy column offset and dead detector rows into the
crops as normal (`scanner_artefacts`). `--objects-per-crop` sets how many objects a crop
gets (1-3 by default, for 128-px crops); `--windowed-synth` builds each object on its own
bounding box instead of the whole crop, which makes many objects in large crops affordable.

Network: the tile is averaged down 2x (128 x 128), then a U-shaped conv net (strides 2, 2, 2
with skips back to 1/4) gives per-pixel logits at 1/4 of the tile, smoothed over 3 x 3; their
sigmoid is the probability that the pixel holds an added object. The exported map is that
probability averaged over `--map-smoothing` k x k cells (the shipped model: 7; applied after
training, so `--rethreshold` may change it) and `pred_score` its maximum. It is fully convolutional: versions 2-5 were trained on 128 x 128
crops (the default `--crop`), the shipped version 10 on whole 256 x 256 tiles (`--crop 256
--batch 8 --objects-per-crop 4 12 --windowed-synth`, as `make models` runs it); it runs on
256 x 256 tiles.

    python anomaly.py --train <tiles/train> --val <tiles/val> --spec <model.toml> --out models/cargo-anomaly
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import auroc, load_tiles, log, lr_at, pitch_line, setup, write_json

IN_DOWN = 2  # the tile is averaged down 2x before the network
MAP_DOWN = 4  # the map is 1/4 of the tile
R_MIN_ATTENUATION = 0.05  # below this A_high the engine sets R to 0 (src/preprocess/tiles.rs)


def cbr(ci: int, co: int, s: int = 1, d: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, 3, s, d, dilation=d, bias=False), nn.BatchNorm2d(co), nn.SiLU(inplace=True))


class SegNet(nn.Module):
    """U-shaped net; ~215 M multiply-adds per 256 x 256 tile."""

    def __init__(self, w: int = 16):
        super().__init__()
        self.stem = cbr(3, w)  # 1/2 of the tile
        self.d1 = nn.Sequential(cbr(w, 2 * w, 2), cbr(2 * w, 2 * w))  # 1/4
        self.d2 = nn.Sequential(cbr(2 * w, 4 * w, 2), cbr(4 * w, 4 * w))  # 1/8
        self.d3 = nn.Sequential(cbr(4 * w, 4 * w, 2), cbr(4 * w, 4 * w, d=2))  # 1/16: context
        self.u2 = cbr(4 * w, 4 * w)
        self.u1 = nn.Conv2d(4 * w, 2 * w, 1)
        self.head = nn.Sequential(cbr(2 * w, 2 * w), nn.Conv2d(2 * w, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, 1, H/4, W/4], smoothed over 3 x 3."""
        s = F.avg_pool2d(x, IN_DOWN)
        b = self.d1(self.stem(s))
        c = self.d2(b)
        d = self.d3(c)
        u = self.u2(F.interpolate(d, scale_factor=2.0, mode="nearest") + c)
        u = F.interpolate(self.u1(u), scale_factor=2.0, mode="nearest") + b
        return F.avg_pool2d(self.head(u), 3, stride=1, padding=1, count_include_pad=False)


class Exported(nn.Module):
    """The anomalib layout. `smooth` > 1 averages the probability map over `smooth` x `smooth`
    cells before its maximum becomes `pred_score`, as anomalib blurs its maps: a clean scan's
    peak is often one sharp cell on a fringe or a scrap edge, an added object a patch."""

    def __init__(self, model: SegNet, smooth: int = 1, flip: bool = False):
        super().__init__()
        self.model = model
        self.smooth = smooth
        self.flip = flip

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = torch.sigmoid(self.model(images))
        if self.flip:
            # The tile mirrored along the scan, as the net saw half its training crops, and its
            # map mirrored back: averaging the two halves the variance of the photon-noise
            # speckle a clean scan's peak often is, while an added object reads high in both.
            m = 0.5 * (m + torch.flip(torch.sigmoid(self.model(torch.flip(images, dims=[3]))), dims=[3]))
        if self.smooth > 1:
            m = F.avg_pool2d(m, self.smooth, stride=1, padding=self.smooth // 2, count_include_pad=False)
        return m, m.amax(dim=(1, 2, 3))


class Channels:
    """Normalisation of the spec's (A_high, A_low, R) recipe, to go to physics and back."""

    def __init__(self, spec_input: dict):
        names = [c["channel"] for c in spec_input["channels"]]
        if names != ["attenuation_high", "attenuation_low", "r_value"]:
            raise SystemExit(f"anomaly.py needs the A_high, A_low, R recipe, the spec has {names}")
        self.mean = np.array([c.get("mean", 0.0) for c in spec_input["channels"]], np.float32)
        self.std = np.array([c.get("std", 1.0) for c in spec_input["channels"]], np.float32)

    def physics(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x[:, 0] * self.std[0] + self.mean[0], x[:, 1] * self.std[1] + self.mean[1]

    def tensor(self, a_h: np.ndarray, a_l: np.ndarray) -> np.ndarray:
        r = np.where(a_h > R_MIN_ATTENUATION, a_l / np.maximum(a_h, R_MIN_ATTENUATION), 0.0)
        out = np.stack([a_h, a_l, r], axis=1)
        return ((out - self.mean[None, :, None, None]) / self.std[None, :, None, None]).astype(np.float32)


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian (the scanner's point spread), edges clamped."""
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    p = np.pad(img, r, mode="edge")
    rows = sum(k[i] * p[i : i + img.shape[0], :] for i in range(2 * r + 1))
    return sum(k[i] * rows[:, i : i + img.shape[1]] for i in range(2 * r + 1))


@functools.lru_cache(maxsize=None)
def axis_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] resampling matrix of the engine (`src/inspect/pitch.rs`): box filter by
    covered length when shrinking, linear between centres when enlarging."""
    w = np.zeros((n_out, n_in), np.float32)
    scale = n_out / n_in
    for i in range(n_out):
        if scale < 1.0:
            a, b = i / scale, min((i + 1) / scale, n_in)
            for j in range(int(np.floor(a)), min(max(int(np.ceil(b)), int(np.floor(a)) + 1), n_in)):
                w[i, j] = max(0.0, min(j + 1, b) - max(j, a)) * scale
        else:
            c = min(max((i + 0.5) / scale - 0.5, 0.0), n_in - 1)
            j0 = min(int(np.floor(c)), max(n_in - 2, 0))
            t = c - j0
            if n_in == 1:
                w[i, 0] = 1.0
            else:
                w[i, j0], w[i, j0 + 1] = 1.0 - t, t
    return w


def coarser_scanner(planes: list[np.ndarray], factor: float) -> list[np.ndarray]:
    """What a scanner with `factor` times the pitch records, resampled back to this pitch by the
    engine: box-filter down, linear up (the engine's `pitch::resample`)."""
    h, w = planes[0].shape
    hs, ws = max(2, round(h / factor)), max(2, round(w / factor))
    dr, dc = axis_weights(h, hs), axis_weights(w, ws)
    ur, uc = axis_weights(hs, h), axis_weights(ws, w)
    return [(ur @ (dr @ p @ dc.T) @ uc.T).astype(np.float32) for p in planes]


class ObjectSynth:
    """Places random foreign objects into clean crops, in attenuation space (see the module doc)."""

    def __init__(self, k_range: tuple[float, float], a_max: float, photons: tuple[float, float],
                 max_length: float = 200.0, per_crop: tuple[int, int] = (1, 3), windowed: bool = False):
        self.k_lo, self.k_hi = k_range
        self.a_max = a_max
        self.photons = photons
        self.max_length = max_length
        self.per_crop = per_crop
        # Windowed: each object is built, textured, blurred and given its noise on its own
        # bounding box (plus the blur's reach) instead of the whole crop. Its shape is the same;
        # the draws differ (fewer normals, texture normalised over the box), so the default
        # stays off to reproduce the shipped model.
        self.windowed = windowed

    def profile(self, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, tuple[slice, slice]]:
        """One object's areal-density shape in [0, 1], and the part of the crop it covers."""
        length = float(np.exp(rng.uniform(np.log(6.0), np.log(self.max_length))))
        aspect = float(np.exp(rng.uniform(0.0, np.log(8.0))))
        a, b = length / 2, max(1.5, length / 2 / aspect)
        th = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        if self.windowed:
            # Half extents of the box |u|, |v| < 1.3 (a blob's lobes reach 0.6 + 0.7), plus 4 px
            # for the final blur (radius 3 at sigma <= 1.2): outside it the profile is 0 exactly.
            c, s_ = abs(np.cos(th)), abs(np.sin(th))
            ex, ey = 1.3 * (a * c + b * s_) + 4, 1.3 * (a * s_ + b * c) + 4
            y0, y1 = max(0, int(cy - ey)), min(h, int(np.ceil(cy + ey)) + 1)
            x0, x1 = max(0, int(cx - ex)), min(w, int(np.ceil(cx + ex)) + 1)
        else:
            y0, y1, x0, x1 = 0, h, 0, w
        win = (slice(y0, y1), slice(x0, x1))
        h, w = y1 - y0, x1 - x0
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        u = ((xx - cx) * np.cos(th) + (yy - cy) * np.sin(th)) / a
        v = (-(xx - cx) * np.sin(th) + (yy - cy) * np.cos(th)) / b
        kind = rng.integers(0, 4)
        if kind == 0:  # solid ellipsoid seen in projection
            p = np.sqrt(np.clip(1 - u * u - v * v, 0, 1))
        elif kind == 1:  # slab or box: flat thickness
            p = ((np.abs(u) < 1) & (np.abs(v) < 1)).astype(np.float32)
        elif kind == 2:  # hollow shell (a tank, a tyre, a compartment wall)
            r2 = u * u + v * v
            t = rng.uniform(0.1, 0.4)
            p = ((r2 < 1) & (r2 > (1 - t) ** 2)).astype(np.float32)
        else:  # lumpy blob: a few overlapping ellipsoids
            p = np.zeros((h, w), np.float32)
            for _ in range(rng.integers(2, 5)):
                du, dv = rng.uniform(-0.6, 0.6, 2)
                s = rng.uniform(0.3, 0.7)
                p = np.maximum(p, np.sqrt(np.clip(1 - ((u - du) ** 2 + (v - dv) ** 2) / s**2, 0, 1)))
        if rng.random() < 0.5:  # texture: packed contents, not a uniform solid
            n = blur(rng.standard_normal((h, w)).astype(np.float32), rng.uniform(1.5, 6.0))
            p = p * np.clip(1 + n / (n.std() + 1e-6) * rng.uniform(0.1, 0.4), 0, 2)
        return blur(p.astype(np.float32), rng.uniform(0.6, 1.2)), win

    def __call__(self, a_h: np.ndarray, a_l: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns the new planes and the object mask (profile above 15 % of its peak)."""
        h, w = a_h.shape
        mask = np.zeros((h, w), bool)
        if self.windowed:
            a_h, a_l = a_h.astype(np.float64), a_l.astype(np.float64)
        else:
            a_h, a_l = a_h.copy(), a_l.copy()
        for _ in range(rng.integers(self.per_crop[0], self.per_crop[1] + 1)):
            p, win = self.profile(rng, h, w)
            # Objects sit where the beam crossed material (inside the container), not in open air.
            p = p * (a_h[win] > R_MIN_ATTENUATION)
            if p.max() < 0.2:
                continue  # fell outside the crop
            p /= p.max()
            peak = float(np.exp(rng.uniform(np.log(0.08), np.log(3.0))))
            k = rng.uniform(self.k_lo, self.k_hi)
            # Load displaced by the object's volume: a share of what the ray crossed.
            f = rng.uniform(0.0, 0.4) * (p > 0.05)
            old_h, old_l = a_h[win].copy(), a_l[win].copy()
            new_h = old_h * (1 - f) + peak * p
            new_l = old_l * (1 - f) + k * peak * p
            # Darker pixels carry more photon noise: var(A) ~ exp(A) / N per pixel.
            for plane, old, n0 in ((new_h, old_h, self.photons[0]), (new_l, old_l, self.photons[1])):
                extra = np.clip(np.exp(np.minimum(plane, self.a_max)) - np.exp(np.minimum(old, self.a_max)), 0, None) / n0
                plane += rng.standard_normal(plane.shape).astype(np.float32) * np.minimum(np.sqrt(extra), 0.5)
            if self.windowed:
                a_h[win], a_l[win] = new_h, new_l
            else:  # the whole crop, kept as the default path always computed it
                a_h, a_l = new_h, new_l
            # An object pixel stays labelled when the object itself drives the detector into
            # saturation (a dense block behind a light load is exactly what must be flagged);
            # only pixels the load had already blacked out are left unlabelled, as nothing added
            # there can be seen.
            mask[win] |= (peak * p > max(0.04, 0.15 * peak)) & (old_h < self.a_max)
        return np.clip(a_h, 0, self.a_max), np.clip(a_l, 0, self.a_max), mask


def scanner_artefacts(a_h: np.ndarray, a_l: np.ndarray, a_max: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The read-out faults of real dual-energy linacs, which are not foreign objects:
    - interlace offset (half the time): an interlaced linac fires its low-energy pulse while the
      vehicle moves on, so the low-energy column sits a fraction of a column later and every
      sharp edge (wheels, axles, beams) gets an R-value fringe. Sampled by interpolating the
      low-energy *transmission* between neighbouring columns (shift 0.35-0.65 of a column; the
      horizontal flip of the crop covers the other direction).
    - dead detector rows (half the time, 1-3 rows): they read dark, so calibration gives them
      the floor attenuation in both planes across the whole crop.
    Planes are [H, W] attenuation; returns new planes."""
    a_h, a_l = a_h.copy(), a_l.copy()
    if rng.random() < 0.5:
        s = float(rng.uniform(0.35, 0.65))
        t = np.exp(-a_l)
        t[:, :-1] = (1 - s) * t[:, :-1] + s * t[:, 1:]
        a_l = np.minimum(-np.log(np.maximum(t, 1e-12)), a_max).astype(np.float32)
    if rng.random() < 0.5:
        rows = rng.integers(0, a_h.shape[0], rng.integers(1, 4))
        a_h[rows], a_l[rows] = a_max, a_max
    return a_h, a_l


def make_batch(x: np.ndarray, idx: np.ndarray, crop: int, chans: Channels, synth: ObjectSynth, share: float,
               rng: np.random.Generator, coarse_share: float = 0.0,
               artefact_share: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Random crops of clean tiles; `share` of them get objects. Targets at 1/4 resolution."""
    n, (_, h, w) = len(idx), x.shape[1:]
    out = np.empty((n, 3, crop, crop), np.float32)
    tgt = np.zeros((n, 1, crop // MAP_DOWN, crop // MAP_DOWN), np.float32)
    for j, i in enumerate(idx):
        y0, x0 = rng.integers(0, h - crop + 1) // MAP_DOWN * MAP_DOWN, rng.integers(0, w - crop + 1) // MAP_DOWN * MAP_DOWN
        t = x[i : i + 1, :, y0 : y0 + crop, x0 : x0 + crop].astype(np.float32)
        if rng.random() < 0.5:
            t = t[..., ::-1]
        a_h, a_l = chans.physics(t)
        if rng.random() < share:
            if (a_h[0] > R_MIN_ATTENUATION).mean() > 0.05:
                nh, nl, m = synth(a_h[0], a_l[0], rng)
                a_h, a_l = nh[None], nl[None]
                tgt[j, 0] = m.reshape(crop // MAP_DOWN, MAP_DOWN, crop // MAP_DOWN, MAP_DOWN).mean(axis=(1, 3)) > 0.25
        # Drawn only when asked for, so that a run without them reproduces the earlier models.
        if artefact_share > 0 and rng.random() < artefact_share:
            # After the objects: the scanner records objects and load alike, and the target
            # stays as it was (an artefact is normal, an object under it is still an object).
            h2, l2 = scanner_artefacts(a_h[0], a_l[0], synth.a_max, rng)
            a_h, a_l = h2[None], l2[None]
        if coarse_share > 0 and rng.random() < coarse_share:
            # A scanner with a coarser pitch, as the engine resamples it to the model's: the
            # same cargo, blurrier, and still normal (objects stay objects).
            h2, l2 = coarser_scanner([a_h[0], a_l[0]], float(rng.uniform(1.4, 2.2)))
            a_h, a_l = h2[None], l2[None]
        out[j] = chans.tensor(a_h, a_l)[0]
    return out, tgt


def train(x: np.ndarray, chans: Channels, synth: ObjectSynth, args, budget_s: float) -> tuple[SegNet, dict]:
    """AdamW, warm-up then cosine over `epochs` or the time budget, whichever ends first."""
    model = SegNet(args.width)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    start, history = time.time(), []
    step, seen, progress = 0, 0, 0.0
    order, at, total, nsum = rng.permutation(len(x)), 0, 0.0, 0
    samples = args.epochs * len(x)
    model.train()
    while progress < 1.0:
        if at + args.batch > len(order):
            order, at = rng.permutation(len(x)), 0
        xb, tb = make_batch(x, order[at : at + args.batch], args.crop, chans, synth, args.object_share, rng,
                            args.coarse_share, args.artefact_share)
        at += args.batch
        for g in opt.param_groups:
            g["lr"] = lr_at(progress, args.lr)
        logits = model(torch.from_numpy(xb))
        t = torch.from_numpy(tb)
        # Object pixels are rare; weigh them up so a thin bar is worth learning.
        loss = F.binary_cross_entropy_with_logits(logits, t, pos_weight=torch.tensor(args.pos_weight))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seen += len(xb)
        total += loss.item()
        nsum += 1
        progress = max(seen / samples, (time.time() - start) / budget_s)
        if step % 100 == 0 or progress >= 1.0:
            history.append({"step": step, "epochs_seen": round(seen / len(x), 3), "bce": total / nsum,
                            "seconds": round(time.time() - start, 1)})
            log(f"anomaly step {step} ({seen / len(x):.2f} epochs): bce {total / nsum:.4f}, {time.time() - start:.0f} s")
            total, nsum = 0.0, 0
    return model, {"history": history, "seconds": time.time() - start, "steps": step,
                   "epochs_seen": seen / len(x), "stopped_by_budget": seen < samples}


@torch.no_grad()
def run(model: nn.Module, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    maps, scores = [], []
    for i in range(0, len(x), batch):
        m, s = model(torch.from_numpy(x[i : i + batch].astype(np.float32)))
        maps.append(m.numpy())
        scores.append(s.numpy())
    return np.concatenate(maps), np.concatenate(scores)


def scan_peaks(records: list[dict], maps: np.ndarray, tile_h: int, tile_w: int) -> dict[str, float]:
    """Each scan's highest value of its stitched map, as the engine forms it (`AnomalyCanvas`):
    every tile's map sampled nearest up to the tile's pixels, overlaps averaged, skipped air 0.
    The region threshold is cut on this map, so it is chosen on it too: the highest tile value
    is higher where tiles overlap and disagree."""
    by_case: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_case.setdefault(r["case_id"], []).append(i)
    peaks = {}
    for case, idx in by_case.items():
        rows = max(records[i]["rect"]["y"] + records[i]["rect"]["height"] for i in idx)
        cols = max(records[i]["rect"]["x"] + records[i]["rect"]["width"] for i in idx)
        total, count = np.zeros((rows, cols)), np.zeros((rows, cols))
        for i in idx:
            m = maps[i, 0]
            rect = records[i]["rect"]
            h, w = rect["height"], rect["width"]
            # input pixel t of the tile reads map cell t * map_size // input_size
            ys = np.minimum(np.arange(h) * m.shape[0] // tile_h, m.shape[0] - 1)
            xs = np.minimum(np.arange(w) * m.shape[1] // tile_w, m.shape[1] - 1)
            total[rect["y"] : rect["y"] + h, rect["x"] : rect["x"] + w] += m[np.ix_(ys, xs)]
            count[rect["y"] : rect["y"] + h, rect["x"] : rect["x"] + w] += 1
        peaks[case] = float((total / np.maximum(count, 1)).max())
    return peaks


def fit(args, chans: Channels) -> tuple[SegNet, dict, tuple[float, float], float, str]:
    """Trains on the clean tiles of `--train`; saves segnet.pt. Returns the model, the run's record,
    the objects' material-ratio range, the saturation level and the spec's pitch line."""
    # Clean cargo only: grid tiles no truth box touches (not even a dropped sliver).
    tr = load_tiles(args.train, lambda r: r["kind"] == "tile" and r["clean"])
    log(f"anomaly train: {len(tr)} clean tiles from {tr.summary['cases']} cases")
    # Material ratios and the saturation level come from the clean pixels themselves.
    a_h, a_l = chans.physics(tr.x[::7].astype(np.float32))
    solid = (a_h > 0.3) & (a_h < 8.0)
    ratio = a_l[solid] / a_h[solid]
    q_lo, q_hi = (float(v) for v in np.quantile(ratio, [0.005, 0.995]))
    k_range = (q_lo - 0.15 * (q_hi - q_lo), q_hi + 0.15 * (q_hi - q_lo))
    a_max = float(a_h.max())
    del a_h, a_l, solid, ratio
    log(f"A_low/A_high over clean pixels: 0.5-99.5% [{q_lo:.3f}, {q_hi:.3f}], objects drawn in "
        f"[{k_range[0]:.3f}, {k_range[1]:.3f}]; saturation A_high {a_max:.2f}")
    synth = ObjectSynth(k_range, a_max, tuple(args.photons), float(args.max_object_px),
                        tuple(args.objects_per_crop), args.windowed_synth)
    model, info = train(tr.x, chans, synth, args, args.budget_min * 60)
    pitch = pitch_line(tr.summary)
    del tr
    torch.save(model.state_dict(), args.out / "segnet.pt")
    return model, info, k_range, a_max, pitch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train", type=Path, help="tiles export to train on (not needed with --rethreshold)")
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--spec", type=Path, required=True, help="spec the tiles were exported with (input section)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--pos-weight", type=float, default=4.0)
    ap.add_argument("--object-share", type=float, default=0.6, help="share of training crops given objects")
    ap.add_argument("--max-object-px", type=int, default=200,
                    help="longest synthetic object, tile pixels (log-uniform from 6); objects longer than "
                         "--crop have no edge in the crop to be seen by")
    ap.add_argument("--objects-per-crop", type=int, nargs=2, default=[1, 3], metavar=("LO", "HI"),
                    help="synthetic objects in a crop given objects, uniform in [LO, HI]; scale with the crop's "
                         "area to keep as many per pixel")
    ap.add_argument("--windowed-synth", action="store_true",
                    help="build each synthetic object on its own bounding box, not the whole crop: the same "
                         "shapes, ~4x faster at 256-px crops with many objects, but other random draws "
                         "(version 5 was trained without it)")
    ap.add_argument("--photons", type=float, nargs=2, default=[1e5, 6e4],
                    help="open-beam photons per pixel, high and low energy (the scanner profile's noise)")
    ap.add_argument("--coarse-share", type=float, default=0.0,
                    help="share of training crops seen as by a scanner of 1.4-2.2x the pitch, resampled back")
    ap.add_argument("--artefact-share", type=float, default=0.0,
                    help="share of training crops given scanner artefacts (interlace offset, dead rows) as normal")
    ap.add_argument("--map-smoothing", type=int, default=1,
                    help="odd k: the exported map is averaged over k x k cells (after training; --rethreshold may change it)")
    ap.add_argument("--flip-average", action="store_true",
                    help="the exported model also runs the tile mirrored along the scan and averages the two maps "
                         "(after training; twice the inference cost)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-min", type=float, default=30.0)
    ap.add_argument("--val-rate", type=float, default=0.02, help="share of clean val scans allowed to flag")
    ap.add_argument("--version", default="2")
    ap.add_argument("--rethreshold", action="store_true",
                    help="skip training: take segnet.pt and training.json of an earlier run in --out, choose "
                         "the threshold on --val again, export and check (the weights are unchanged)")
    args = ap.parse_args()
    if not args.rethreshold and args.train is None:
        ap.error("--train is required unless --rethreshold is given")
    # Checked before training, not after an hour of it.
    if args.max_object_px <= 6:
        raise SystemExit(f"--max-object-px must be above the shortest object's 6 px, got {args.max_object_px}")
    if not 1 <= args.objects_per_crop[0] <= args.objects_per_crop[1]:
        raise SystemExit(f"--objects-per-crop needs 1 <= LO <= HI, got {args.objects_per_crop}")
    if args.map_smoothing < 1 or args.map_smoothing % 2 == 0:
        raise SystemExit(f"--map-smoothing must be odd and >= 1, got {args.map_smoothing}")
    setup(args.seed, args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    import tomllib

    inp = tomllib.loads(args.spec.read_text())["input"]
    chans = Channels(inp)

    if args.rethreshold:
        # The training run's record stays as it was; only the val-derived fields are redone.
        earlier = json.loads((args.out / "training.json").read_text())
        before_flag = {"artefact_share": 0.0, "max_object_px": 200, "objects_per_crop": [1, 3],
                       "windowed_synth": False}
        for key in ("epochs", "batch", "crop", "width", "lr", "pos_weight", "object_share", "coarse_share",
                    "artefact_share", "max_object_px", "objects_per_crop", "windowed_synth", "seed"):
            # Runs from before a flag existed ran without it (its default).
            if earlier.get(key, before_flag.get(key)) != getattr(args, key):
                raise SystemExit(f"--rethreshold: {key} = {getattr(args, key)} but the earlier run used {earlier.get(key)}")
        model = SegNet(args.width)
        model.load_state_dict(torch.load(args.out / "segnet.pt", weights_only=True))
        info, k_range, a_max = earlier["train"], tuple(earlier["object_ratio_range"]), earlier["saturation_a_high"]
        pitch = None
        log(f"rethreshold: weights of {args.out / 'segnet.pt'} ({info['steps']} training steps)")
    else:
        model, info, k_range, a_max, pitch = fit(args, chans)
    exported = Exported(model, args.map_smoothing, args.flip_average)

    val = load_tiles(args.val, lambda r: r["kind"] == "tile")
    if pitch is None:
        pitch = pitch_line(val.summary)
    maps, scores = run(exported, val.x)
    per_case = scan_peaks(val.records, maps, val.summary["input"][1], val.summary["input"][2])
    clean_case: dict[str, bool] = {}
    classes: dict[str, set] = {}
    for r, b in zip(val.records, val.boxes):
        clean_case[r["case_id"]] = r["clean_case"]
        classes.setdefault(r["case_id"], set()).update(int(c) for c in b[:, 0])
    neg = np.array([v for c, v in per_case.items() if clean_case[c]])
    pos = np.array([v for c, v in per_case.items() if not clean_case[c]])
    val_auroc = auroc(pos, neg)
    # Threshold: the map value at which at most `val_rate` of clean val scans raise a region.
    thr = float(np.quantile(neg, 1.0 - args.val_rate)) if len(neg) else 0.5
    pd = float((pos > thr).mean()) if len(pos) else float("nan")
    log(f"val scan-level AUROC {val_auroc:.3f} ({len(pos)} threat / {len(neg)} clean scans); "
        f"threshold {thr:.4f}: Pd {pd:.3f}, Pfa {(neg > thr).mean():.3f}")
    from common import CATEGORIES

    by_class = {}
    for ci, name in enumerate(CATEGORIES):
        p = np.array([v for c, v in per_case.items() if ci in classes[c]])
        by_class[name] = {"scans": len(p), "auroc": auroc(p, neg)}
    log("val AUROC by class (scans holding it vs clean): "
        + ", ".join(f"{k} {v['auroc']:.2f} ({v['scans']})" for k, v in by_class.items()))

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

    ch = inp["channels"]
    chans_toml = ",\n".join(
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
height = {inp["height"]}{pitch}
channels = [
{chans_toml},
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
        "batch": args.batch, "crop": args.crop, "width": args.width, "lr": args.lr, "pos_weight": args.pos_weight,
        "object_share": args.object_share, "max_object_px": args.max_object_px,
        "objects_per_crop": args.objects_per_crop, "windowed_synth": args.windowed_synth, "coarse_share": args.coarse_share,
        "artefact_share": args.artefact_share, "map_smoothing": args.map_smoothing, "flip_average": args.flip_average, "photons": args.photons, "threads": args.threads,
        "object_ratio_range": k_range, "saturation_a_high": a_max, "train": info,
        "val": {"auroc": val_auroc, "threshold": thr, "pd": pd, "scans_threat": len(pos), "scans_clean": len(neg),
                "auroc_by_class": by_class},
        "onnx_check": {"tiles": len(xs), "max_abs_map": d_map, "max_abs_score": d_score, "tol": tol},
    })
    log(f"done: {params} parameters, total {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
