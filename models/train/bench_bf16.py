"""Times detector training steps of several kinds in the same process and prints their ratios:
by default fp32 against `--bf16` (whether `detector.py --bf16` pays off on this CPU); with
`--strides 8 4 4,8` the output levels of `detector.py --stride` against each other, all under
bf16 as trained (what a level costs, measured on one machine at one moment, since a shared
host's speed drifts over hours).

Fresh models (same seed) take alternating steps on the two input shapes training uses:
16 whole 256 x 256 tiles and 64 windows of 128 x 128. A step is the trunk, the output convs,
a stand-in loss (the focal and GIoU losses are a few percent of a step), backward and AdamW,
as in `detector.train`. The first two steps of each are warm-up and not counted.

    python bench_bf16.py [--steps 12] [--threads 2] [--strides 8 4 4,8]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import log, setup
from detector import Detector, cpu_has_bf16, parse_strides


def step(model: Detector, opt: torch.optim.Optimizer, x: torch.Tensor, bf16: bool) -> float:
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = model.trunk(x)
    logits, ltrb = model.outputs([f.float() for f in feats])
    loss = logits.square().mean() + ltrb.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--strides", type=parse_strides, nargs="+",
                    help="compare these output levels (each as detector.py --stride takes it) under bf16")
    args = ap.parse_args()
    setup(0, args.threads)
    log(f"CPU with native bf16 (avx512_bf16 or AMX): {cpu_has_bf16()}; {args.threads} threads")
    if args.strides:
        kinds = {f"stride {','.join(map(str, s))}": (s, True) for s in args.strides}
    else:
        kinds = {"fp32": ((8,), False), "bf16": ((8,), True)}
    models = {k: Detector(stride=s).to(memory_format=torch.channels_last) for k, (s, _) in kinds.items()}
    opts = {k: torch.optim.AdamW(models[k].parameters(), lr=1e-3) for k in models}
    first = next(iter(kinds))
    for n, size in ((16, 256), (64, 128)):
        x = torch.randn(n, 3, size, size).contiguous(memory_format=torch.channels_last)
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for i in range(args.steps + 2):
            for k, (_, bf16) in kinds.items():
                dt = step(models[k], opts[k], x, bf16)
                if i >= 2:
                    times[k].append(dt)
        med = {k: statistics.median(v) for k, v in times.items()}
        parts = ", ".join(f"{k} {med[k]:.3f} s ({med[k] / med[first]:.2f}x {first}'s time)" for k in kinds)
        log(f"{n} x {size} x {size}, median of {args.steps} steps: {parts}")


if __name__ == "__main__":
    main()
