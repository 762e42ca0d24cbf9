"""Supernet training throughput (images/s): the paper's NASNet supernet and the NAS-Bench-201 supernet.

    python -m perf.supernet_speed                     # NASNet 48 channels, 8 cells, batch 80, 32x32 (CPU; GPU too if present)
    python -m perf.supernet_speed --steps 10 --threads 2
    python -m perf.supernet_speed --channels 16 --batch 64   # smaller, e.g. for a quick look
    # On a GPU (docs/oneshot.md, section 6): both supernets, fp32 and bf16, about a minute on an H100
    python -m perf.supernet_speed --space both --device cuda --steps 50 --warmup 10 --json gpu_speed.json

Each step is what SupernetModule.training_step does: a fresh random architecture, forward,
cross-entropy, backward, gradient clipping, SGD step. Variants: float32; channels-last; bfloat16
autocast (CPU AMP); on a GPU float32, float16 and bfloat16 autocast with channels-last. Inputs are
random CIFAR-format tensors (3x32x32), or real Fashion-MNIST images (1x28x28) with ``--fashion DIR``
(a folder with the idx files), put on the device once, so the figure is the network's speed, not the
data loader's. The first ``--warmup`` steps are not timed. ``--budget-s`` skips the variants left
once that many seconds have passed (the GPU run stays within a lent machine's time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import numpy as np
import torch


def make_supernet(space_name: str, channels: int, layers: int, cells: int, in_channels: int):
    """(supernet, search space) of ``space_name``: nasnet (``layers`` cells) or nasbench201 (``cells`` per stage)."""
    if space_name == "nasnet":
        from lanas.spaces.nasnet import NASNetSpace
        from lanas.training.network import NASNetNetwork

        return NASNetNetwork(channels, layers, in_channels=in_channels), NASNetSpace()
    from lanas.spaces.nasbench201 import NASBench201Space
    from lanas.training.nb201 import NB201Network

    return NB201Network(channels, cells, in_channels=in_channels), NASBench201Space()


def fashion_batch(data_dir: str, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``batch`` real Fashion-MNIST training images (normalised) and labels."""
    from lanas.training.data import FASHION_FILES, FashionMNISTDataModule, find_idx_file, read_idx

    images = read_idx(find_idx_file(data_dir, FASHION_FILES["train_images"]), labels=False)[:batch]
    labels = read_idx(find_idx_file(data_dir, FASHION_FILES["train_labels"]), labels=True)[:batch]
    x = (images.float().div(255).unsqueeze(1) - FashionMNISTDataModule.mean[0]) / FashionMNISTDataModule.std[0]
    return x, labels


def throughput(device: torch.device, channels: int, layers: int, batch: int, steps: int, warmup: int,
               channels_last: bool, amp_dtype: torch.dtype | None, space: str = "nasnet", cells: int = 5,
               fashion: str | None = None) -> float:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    if fashion:
        x, y = fashion_batch(fashion, batch)
    else:
        x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    net, arch_space = make_supernet(space, channels, layers, cells, x.shape[1])
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(device).to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    x, y = x.to(device).contiguous(memory_format=fmt), y.to(device)
    archs = arch_space.sample(rng, warmup + steps)
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


def variants(device: str) -> list[tuple[str, str, bool, torch.dtype | None]]:
    if device == "cuda":
        return [("cuda", "float32", False, None), ("cuda", "float32 channels-last", True, None),
                ("cuda", "fp16 autocast channels-last", True, torch.float16),
                ("cuda", "bf16 autocast channels-last", True, torch.bfloat16)]
    return [("cpu", "float32", False, None), ("cpu", "float32 channels-last", True, None),
            ("cpu", "bf16 autocast channels-last", True, torch.bfloat16)]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=("nasnet", "nasbench201", "both"), default="nasnet")
    parser.add_argument("--channels", type=int, default=48, help="nasnet initial channels (paper: 48)")
    parser.add_argument("--layers", type=int, default=8, help="nasnet cells (paper: 8)")
    parser.add_argument("--batch", type=int, default=80, help="nasnet batch (paper: 80)")
    parser.add_argument("--nb201-channels", type=int, default=16, help="NAS-Bench-201 supernet channels (NB201: 16)")
    parser.add_argument("--nb201-cells", type=int, default=5, help="NAS-Bench-201 cells per stage (NB201: 5)")
    parser.add_argument("--nb201-batch", type=int, default=256, help="NAS-Bench-201 batch (NB201: 256)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: the CPU, and the GPU when there is one")
    parser.add_argument("--cpu-only", action="store_true", help="same as --device cpu")
    parser.add_argument("--fashion", default=None, help="a Fashion-MNIST folder: real 1x28x28 images instead of "
                                                        "random 3x32x32 tensors")
    parser.add_argument("--budget-s", type=float, default=None, help="skip the variants left after this many seconds")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cpu" if args.cpu_only else args.device
    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"],
               "cuda": ["cuda"]}[device]
    if "cuda" in devices:
        if not torch.cuda.is_available():
            parser.error("--device cuda: no GPU is visible to torch")
        torch.backends.cudnn.benchmark = True
    spaces = ["nasnet", "nasbench201"] if args.space == "both" else [args.space]
    image = "1x28x28 Fashion-MNIST" if args.fashion else "3x32x32 random"
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
          + (f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "")
          + f"; inputs {image}; steps={args.steps} (+{args.warmup} warm-up)", flush=True)
    results, start = [], time.perf_counter()
    for space in spaces:
        channels, batch = (args.channels, args.batch) if space == "nasnet" else (args.nb201_channels, args.nb201_batch)
        size = f"{args.layers} cells" if space == "nasnet" else f"{args.nb201_cells} cells/stage"
        for dev in devices:
            for device_name, label, channels_last, dtype in variants(dev):
                if args.budget_s is not None and time.perf_counter() - start > args.budget_s:
                    print(f"{space} {device_name} {label}: skipped (--budget-s {args.budget_s:g} spent)", flush=True)
                    continue
                rate = throughput(torch.device(device_name), channels, args.layers, batch, args.steps, args.warmup,
                                  channels_last, dtype, space=space, cells=args.nb201_cells, fashion=args.fashion)
                row = {"space": space, "device": device_name,
                       "device_name": torch.cuda.get_device_name() if device_name == "cuda" else "cpu",
                       "variant": label, "channels": channels, "size": size, "batch": batch, "images_per_s": rate,
                       "inputs": image}
                results.append(row)
                epoch_s = 45_000 / rate
                print(f"{space:11s} C={channels} {size:13s} batch {batch:3d} {device_name:4s} {label:28s} "
                      f"{rate:9.1f} images/s  (45k-image epoch: {epoch_s / 60:8.2f} min)", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)
    return results


if __name__ == "__main__":
    main()
