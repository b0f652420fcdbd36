"""Throughput benchmark of the photo-z CNN (torch and numpy only).

Measures, on whatever device torch sees:

* model FLOPs per image, counted with ``torch.utils.flop_counter.FlopCounterMode``
  (forward; and forward + backward for a training step);
* the device's dense matrix-multiply rate (bf16 on CUDA, float32 on CPU), the
  yardstick for the achieved fraction;
* training throughput (images/s summed over all members trained at once,
  batch ``B`` per member) of the exact step used by ``photoz.nn.train``:
  GPU-resident data, GPU augmentation, bf16 autocast, channels-last, optional
  ``torch.compile``, stacked members;
* inference throughput;
* the projected wall time of the paper's protocol (30 models x 30 epochs x
  393,000 images) at the best measured training rate.

Nothing is estimated that is not measured in the same run: numbers printed
are for the device the script ran on. ``--tiny`` runs a few iterations at
small batches (for checking the script on a CPU).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from .model import PhotoZNet, count_parameters
from .train import augment, train_step

__all__ = ["count_flops", "matmul_rate", "bench_train", "bench_inference", "main"]

PROTOCOL = {"models": 30, "epochs": 30, "images": 393_000}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(width=1.0, dense=1096, batch=2):
    """FLOPs per image of the forward pass and of a training step (forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = PhotoZNet(width=width, dense=dense)
    x = torch.randn(batch, 5, 64, 64)
    e = torch.rand(batch)
    y = torch.randint(0, 180, (batch,))
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            model(x, e)
    fwd = fc.get_total_flops() / batch
    per_module = {}
    for name, counts in fc.get_flop_counts().items():
        if name.count(".") == 1 and name != "Global":
            per_module[name.split(".", 1)[1]] = sum(counts.values()) / batch
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x, e), y).backward()
    step = fc.get_total_flops() / batch
    return {"forward": fwd, "train_step": step, "per_module_forward": per_module}


def matmul_rate(device, dtype, n=8192, reps=20):
    """Measured dense matmul rate in FLOP/s (n x n x n products)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def bench_train(device, members=1, batch=128, iters=20, warmup=5, width=1.0, dense=1096, amp=True,
                channels_last=True, compile_mode=None, n_data=4096, data_dtype=torch.bfloat16):
    """Training images/s (summed over members) of ``train_step`` with device-resident data."""
    model = PhotoZNet(width=width, dense=dense, members=members, seeds=list(range(members))).to(device)
    if channels_last:
        model.set_channels_last(True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, **({"fused": True} if device.type == "cuda" else {}))
    fwd = torch.compile(model, mode=compile_mode) if compile_mode else model
    gen = torch.Generator(device="cpu").manual_seed(0)
    data = torch.randn(n_data, 5, 64, 64, generator=gen).to(device=device, dtype=data_dtype)
    y_all = torch.randint(0, 180, (n_data,), generator=gen).to(device)
    e_all = torch.rand(n_data, generator=gen).to(device)

    def step(i):
        idx = torch.randint(0, n_data, (members, batch), generator=gen).to(device)
        codes = torch.randint(0, 8, (members, batch), generator=gen).to(device)
        x = data[idx.reshape(-1)].float().reshape(members, batch, 5, 64, 64)
        return train_step(fwd, opt, x, codes, y_all[idx], e_all[idx], amp)

    t_compile = time.perf_counter()
    for i in range(warmup):
        step(i)
    _sync(device)
    t_compile = time.perf_counter() - t_compile
    t = time.perf_counter()
    for i in range(iters):
        loss = step(i)
    _sync(device)
    dt = time.perf_counter() - t
    assert torch.isfinite(loss).all()
    return {"members": members, "batch": batch, "images_per_s": members * batch * iters / dt,
            "s_per_iter": dt / iters, "warmup_s": t_compile}


@torch.no_grad()
def bench_inference(device, batch=4096, iters=20, warmup=3, width=1.0, dense=1096, amp=True, channels_last=True,
                    compile_mode=None):
    """Inference images/s (softmax PDFs) at ``batch``."""
    model = PhotoZNet(width=width, dense=dense).to(device).eval()
    if channels_last:
        model.set_channels_last(True)
    fwd = torch.compile(model, mode=compile_mode) if compile_mode else model
    x = torch.randn(batch, 5, 64, 64, device=device)
    e = torch.rand(batch, device=device)
    for _ in range(warmup):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            torch.softmax(fwd(x, e).float(), -1)
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            p = torch.softmax(fwd(x, e).float(), -1)
    _sync(device)
    return {"batch": batch, "images_per_s": batch * iters / (time.perf_counter() - t), "check": float(p.sum())}


def environment(device):
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "host": platform.node(), "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "device": str(device)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        info.update(gpu=p.name, gpu_memory_gb=round(p.total_memory / 2 ** 30, 1), cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        info.update(cpu=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench_train", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="a few small iterations (checks the script on a CPU)")
    ap.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 6], help="stacked members per process")
    ap.add_argument("--batch", type=int, default=128, help="batch per member (the paper: 128)")
    ap.add_argument("--extra-batches", type=int, nargs="*", default=[768, 4096],
                    help="also measure one member at these batches (GPU-bound regime)")
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--compile", nargs="*", default=["none", "default", "reduce-overhead"],
                    help="torch.compile modes to try (none = eager; reduce-overhead uses CUDA graphs; "
                         "max-autotune-no-cudagraphs tunes kernels, slow to compile)")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--dense", type=int, default=1096)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--flops-only", action="store_true", help="count FLOPs (full and given network) and stop")
    ap.add_argument("--json", help="also write the results as JSON here")
    a = ap.parse_args(argv)

    device = torch.device("cuda" if (a.device == "auto" and torch.cuda.is_available()) else
                          ("cpu" if a.device == "auto" else a.device))
    if a.threads:
        torch.set_num_threads(a.threads)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if a.tiny:
        a.members, a.batch, a.iters, a.extra_batches = [1, 2], 4, 2, []
        a.compile = ["none"]
    env = environment(device)
    res = {"environment": env, "network": {"width": a.width, "dense": a.dense,
                                           "parameters": count_parameters(PhotoZNet(a.width, a.dense))}}
    print(" ".join(f"{k}={v}" for k, v in env.items()))
    print(f"network width={a.width} dense={a.dense}: {res['network']['parameters']:,} parameters")

    flops = count_flops(a.width, a.dense)
    res["flops"] = flops
    print(f"FLOPs per image: forward {flops['forward'] / 1e9:.3f} GFLOP, training step {flops['train_step'] / 1e9:.3f} GFLOP")
    for k, v in flops["per_module_forward"].items():
        print(f"  forward {k:>4}: {v / 1e6:9.1f} MFLOP ({100 * v / flops['forward']:.1f}%)")

    if a.flops_only:
        return res

    mm_dtype = torch.bfloat16 if cuda else torch.float32
    rate = matmul_rate(device, mm_dtype, n=8192 if cuda else (512 if a.tiny else 2048), reps=20 if cuda else 3)
    res["matmul_flops"] = rate
    print(f"measured {str(mm_dtype).split('.')[-1]} matmul rate: {rate / 1e12:.2f} TFLOP/s")

    amp = cuda
    runs = []
    for mode in a.compile:
        cm = None if mode == "none" else mode
        if cm and not cuda:
            continue
        configs = [(g, a.batch) for g in a.members] + [(1, b) for b in a.extra_batches]
        for g, b in configs:
            try:
                r = bench_train(device, g, b, a.iters, 2 if a.tiny else 5, a.width, a.dense, amp, cuda, cm,
                                n_data=max(64, 8 * b) if a.tiny else 16384,
                                data_dtype=torch.bfloat16 if cuda else torch.float32)
            except torch.OutOfMemoryError:
                print(f"train compile={mode} members={g} batch={b}: out of memory")
                torch.cuda.empty_cache()
                continue
            r.update(compile=mode, tflops=r["images_per_s"] * flops["train_step"] / 1e12)
            r["fraction_of_matmul"] = r["tflops"] * 1e12 / rate
            runs.append(r)
            print(f"train compile={mode:<26} members={g:<2} batch/member={b:<5} {r['images_per_s']:10.1f} img/s "
                  f"{r['s_per_iter'] * 1e3:8.1f} ms/iter {r['tflops']:7.2f} TFLOP/s "
                  f"({100 * r['fraction_of_matmul']:.1f}% of matmul) warmup {r['warmup_s']:.0f} s")
            if cuda:
                torch.cuda.empty_cache()
    res["train"] = runs
    inf = []
    for mode in a.compile:
        cm = None if mode == "none" else mode
        if cm and not cuda:
            continue
        r = bench_inference(device, 8 if a.tiny else 4096, a.iters, 1 if a.tiny else 3, a.width, a.dense, amp, cuda, cm)
        r["compile"] = mode
        inf.append(r)
        print(f"inference compile={mode:<26} batch={r['batch']:<5} {r['images_per_s']:10.1f} img/s")
    res["inference"] = inf
    paper = [r for r in runs if r["batch"] == a.batch]
    if paper:
        best = max(paper, key=lambda r: r["images_per_s"])
        total = PROTOCOL["models"] * PROTOCOL["epochs"] * PROTOCOL["images"]
        hours = total / best["images_per_s"] / 3600
        res["projection"] = {"protocol": PROTOCOL, "images": total, "rate": best["images_per_s"], "hours": hours,
                             "config": {k: best[k] for k in ("compile", "members", "batch")}}
        print(f"projected main protocol ({PROTOCOL['models']} models x {PROTOCOL['epochs']} epochs x "
              f"{PROTOCOL['images']:,} images = {total:.3g} images) at batch {a.batch}/member: "
              f"{hours:.2f} h on this device (best: compile={best['compile']}, {best['members']} members at once)")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=1)
    return res


if __name__ == "__main__":
    main()
