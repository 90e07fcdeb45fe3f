"""Times a detector training step in fp32 and under `--bf16` in the same process and prints the
ratio: whether `detector.py --bf16` pays off on this CPU.

Two fresh models (same seed) take alternating steps on the two input shapes training uses:
16 whole 256 x 256 tiles and 64 windows of 128 x 128. A step is the trunk, the output convs,
a stand-in loss (the focal and GIoU losses are a few percent of a step), backward and AdamW,
as in `detector.train`. The first two steps of each are warm-up and not counted.

    python bench_bf16.py [--steps 12] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import log, setup
from detector import Detector, cpu_has_bf16


def step(model: Detector, opt: torch.optim.Optimizer, x: torch.Tensor, bf16: bool) -> float:
    t = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = model.trunk(x)
    logits, ltrb = model.outputs(feats.float())
    loss = logits.square().mean() + ltrb.mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    setup(0, args.threads)
    log(f"CPU with native bf16 (avx512_bf16 or AMX): {cpu_has_bf16()}; {args.threads} threads")
    models = {m: Detector().to(memory_format=torch.channels_last) for m in ("fp32", "bf16")}
    opts = {m: torch.optim.AdamW(models[m].parameters(), lr=1e-3) for m in models}
    for n, size in ((16, 256), (64, 128)):
        x = torch.randn(n, 3, size, size).contiguous(memory_format=torch.channels_last)
        times: dict[str, list[float]] = {m: [] for m in models}
        for i in range(args.steps + 2):
            for m in models:
                dt = step(models[m], opts[m], x, m == "bf16")
                if i >= 2:
                    times[m].append(dt)
        fp32, bf16 = statistics.median(times["fp32"]), statistics.median(times["bf16"])
        log(f"{n} x {size} x {size}: fp32 {fp32:.3f} s a step, bf16 {bf16:.3f} s (median of {args.steps}): "
            f"bf16 is {fp32 / bf16:.2f}x fp32's speed")


if __name__ == "__main__":
    main()
