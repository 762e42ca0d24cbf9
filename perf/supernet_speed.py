"""Supernet training throughput (images/s) at the paper's configuration, a few steps per variant.

    python -m perf.supernet_speed                     # 48 channels, 8 cells, batch 80, 32x32
    python -m perf.supernet_speed --steps 10 --threads 2
    python -m perf.supernet_speed --channels 16 --batch 64   # smaller, e.g. for a quick look

Each step is what SupernetModule.training_step does: a fresh random nasnet architecture, forward,
cross-entropy, backward, SGD step. Variants: float32; channels-last; bfloat16 autocast (CPU AMP);
on a GPU also float16/bfloat16 autocast with channels-last. The first ``--warmup`` steps are not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import torch

from lanas.spaces.nasnet import NASNetSpace
from lanas.training.network import NASNetNetwork


def throughput(device: torch.device, channels: int, layers: int, batch: int, steps: int, warmup: int,
               channels_last: bool, amp_dtype: torch.dtype | None) -> float:
    torch.manual_seed(0)
    space, rng = NASNetSpace(), np.random.default_rng(0)
    net = NASNetNetwork(channels, layers).to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,), device=device)
    archs = space.sample(rng, warmup + steps)
    scaler = torch.amp.GradScaler(enabled=device.type == "cuda" and amp_dtype == torch.float16)

    def step(arch) -> None:
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with ctx:
            loss = torch.nn.functional.cross_entropy(net(x, arch), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        scaler.step(opt)
        scaler.update()

    for arch in archs[:warmup]:
        step(arch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for arch in archs[warmup:]:
        step(arch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=48)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=80)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [("cpu", "float32", False, None), ("cpu", "float32 channels-last", True, None),
                ("cpu", "bf16 autocast channels-last", True, torch.bfloat16)]
    if torch.cuda.is_available() and not args.cpu_only:
        torch.backends.cudnn.benchmark = True
        variants += [("cuda", "float32", False, None), ("cuda", "float32 channels-last", True, None),
                     ("cuda", "fp16 autocast channels-last", True, torch.float16),
                     ("cuda", "bf16 autocast channels-last", True, torch.bfloat16)]
    print(f"supernet C={args.channels} cells={args.layers} batch={args.batch} 32x32, steps={args.steps} "
          f"(+{args.warmup} warm-up), torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""))
    for device, label, channels_last, dtype in variants:
        rate = throughput(torch.device(device), args.channels, args.layers, args.batch, args.steps, args.warmup,
                          channels_last, dtype)
        epoch_s = 45_000 / rate
        print(f"{device:5s} {label:30s} {rate:9.2f} images/s  (one 45k-image epoch: {epoch_s / 3600:7.2f} h)", flush=True)


if __name__ == "__main__":
    main()
