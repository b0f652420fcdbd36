#!/usr/bin/env python
"""Training and inference throughput of the published CNN, the training loop as the pipeline runs it.

    python benchmarks/bench_train.py | tee benchmarks/bench_train_h200.txt   # on the GPU: the real numbers
    python benchmarks/bench_train.py --tiny                                   # checks the script on a CPU

Needs only torch and numpy (runs on a bare GPU machine with ``PYTHONPATH=src``). In order of
importance, each part skipped once ``--budget-s`` is spent:

1. the environment, FLOPs per image, the measured matmul rate (the yardstick);
2. the real loop: ``python -m photoz train`` (the command the ``train`` rule runs) on synthetic
   galaxies written as the pipeline writes shards (``shard-NNNN.npy``) and a split file:
   A. one fold job of the main trial, 6 members, batch 128, the full network, every speed
      setting ``auto``, an empty compile cache; B. the same job again with the cache A left
      (a later job of the same run); C. one member alone, cache warm. Images/s per epoch come
      from the members' ``metrics.csv`` (an epoch's seconds include its validation);
3. the GPU parity test (``tests/test_nn_gpu_parity.py``);
4. inference (``predict_pdfs``), eager and compiled;
5. the step alone (``photoz.nn.bench.bench_step``): one member / six, CUDA graph on / off.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from photoz.nn.bench import (PAPER_SETTINGS, PROTOCOL, bench_inference, bench_step, count_flops,  # noqa: E402
                             environment, matmul_rate, paper_config)
from photoz.nn.data import SplitArrays  # noqa: E402

T0 = time.time()


def say(*a):
    print(*a, flush=True)


def write_shards(d, n_train, n_val, shard_size=4096, seed=0):
    """Synthetic galaxies as the pipeline stores them: ``shard-NNNN.npy`` (N, 5, 64, 64) float32 and a split."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val
    yy, xx = np.mgrid[:64, :64] - 31.5
    r2 = (xx ** 2 + yy ** 2)[None]
    z = rng.uniform(0.02, 0.38, n)
    for k, a in enumerate(range(0, n, shard_size)):
        m = min(shard_size, n - a)
        size = rng.uniform(1.5, 5, m)[:, None, None]
        colour = 10 ** (0.8 * np.array([-3.0, -1.5, 0.0, 1.0, 2.0])[None] * (z[a:a + m, None] - 0.18))
        img = (10 ** rng.uniform(0.3, 1.3, m))[:, None, None, None] * colour[:, :, None, None] * np.exp(-0.5 * r2 / size ** 2)[:, None]
        np.save(d / f"shard-{k:04d}.npy", (img + rng.normal(0, 0.05, img.shape)).astype(np.float32))
    shard, row = np.arange(n) // shard_size, np.arange(n) % shard_size
    ebv = rng.uniform(0, 0.1, n).astype(np.float32)
    ids = np.arange(n, dtype=np.int64)
    parts = {"train": SplitArrays(ids[:n_train], shard[:n_train], row[:n_train], z[:n_train], ebv[:n_train]),
             "val": SplitArrays(ids[n_train:], shard[n_train:], row[n_train:], z[n_train:], ebv[n_train:]),
             "test": SplitArrays(ids[:0], shard[:0], row[:0], z[:0], ebv[:0])}
    SplitArrays.save_npz(d / "split.npz", parts)


def train_job(name, work, seeds, epochs, cache, width, dense, batch, device):
    """One ``python -m photoz train`` process; returns the per-epoch rates read from its metrics.csv files."""
    cfg = paper_config(epochs=epochs, batch_size=batch, device=device, width=width, dense=dense).sections()
    out = work / "models" / name
    cmd = [sys.executable, "-m", "photoz", "train", "--shards", str(work / "shards"), "--split-npz",
           str(work / "shards" / "split.npz"), "--trial", "bench",
           "--trial-json", json.dumps({"ebv_input": PAPER_SETTINGS["ebv_input"]}), "--fold", "0",
           "--master-seed", "2019", "--seeds", *map(str, seeds),
           "--config-json", json.dumps(cfg), "--out-root", str(out), "--compile-cache", str(cache),
           "--log", str(work / f"{name}.log")]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.time() - t0
    if proc.returncode:
        say(f"  {name}: failed (exit {proc.returncode})\n{proc.stderr[-3000:]}")
        log = work / f"{name}.log"
        if log.exists():
            say(log.read_text()[-3000:])
        return None
    rows = []
    for s in seeds:
        with open(out / "bench" / "fold0" / f"seed{s}" / "metrics.csv") as fh:
            rows.append(list(csv.DictReader(fh)))
    n_train = len(np.load(work / "shards" / "split.npz")["train_z"])
    seconds = [float(r["seconds"]) for r in rows[0]]
    rates = [len(seeds) * n_train / t for t in seconds]
    losses = [[float(r["train_loss"]) for r in m] for m in rows]
    return {"job": name, "members": len(seeds), "n_train": n_train, "epoch_seconds": seconds, "images_per_s": rates,
            "wall_s": wall, "train_loss_member0": losses[0], "val_sigma_mad_member0": [float(r["val_sigma_mad"]) for r in rows[0]]}


def profile_step(device, width, dense, batch, members=6, top=25):
    """The CUDA kernels of 3 uncaptured steps of ``members`` compiled members, by total time."""
    from functools import partial

    from torch.profiler import ProfilerActivity, profile

    from photoz.nn.train import SpeedSettings, _build, _configure_torch, train_step

    cfg = paper_config(width=width, dense=dense, batch_size=batch, device="cuda", cuda_graph="false")
    sp = SpeedSettings.resolve(cfg)
    _configure_torch(cfg, sp)
    nets, opts, fwds = _build(cfg, sp, list(range(members)))
    step = partial(train_step, fwds, opts, amp=sp.amp)
    x = torch.randn(members, batch, 5, 64, 64, device=device)
    codes = torch.randint(0, 8, (members, batch), device=device)
    y = torch.randint(0, 180, (members, batch), device=device)
    e = torch.rand(members, batch, device=device)
    for _ in range(3):
        step(x, codes, y, e)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step(x, codes, y, e)
        torch.cuda.synchronize()
    rows = []
    for ev in prof.key_averages():
        t = getattr(ev, "device_time_total", None) or getattr(ev, "cuda_time_total", 0)
        if t > 0:
            rows.append((t, ev.count, ev.key))
    rows.sort(reverse=True)
    total = sum(t for t, _, _ in rows)
    say(f"  GPU time of 3 steps: {total / 1e3:.1f} ms ({3 * members * batch / (total / 1e6):,.0f} img/s if nothing overlapped)")
    for t, n, key in rows[:top]:
        say(f"  {100 * t / total:5.1f}% {t / 1e3:8.2f} ms {n:6d}x  {key[:110]}")
    return [{"us": t, "count": n, "kernel": key} for t, n, key in rows[:top]]


def c1_input_channels(device, batch=768, reps=20):
    """ms per forward + weight-gradient of the 5x5 first convolution on 5 bands, and on the bands padded to 8."""
    out = {}
    for c in (5, 8):
        x = torch.randn(batch, c, 64, 64, device=device, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        w = torch.randn(64, c, 5, 5, device=device, dtype=torch.bfloat16, requires_grad=True)
        w.data = w.data.contiguous(memory_format=torch.channels_last)
        for i in range(reps + 3):
            if i == 3:
                torch.cuda.synchronize()
                t0 = time.perf_counter()
            y = torch.nn.functional.conv2d(x, w, padding=2)
            y.backward(torch.ones_like(y))
        torch.cuda.synchronize()
        out[c] = (time.perf_counter() - t0) / reps * 1e3
        say(f"  {c} input channels: {out[c]:.2f} ms")
    return out


def step_variants(device, width, dense, batch, left):
    """img/s of the 6-member step with the fused 1x1 heads and/or inductor's conv_1x1_as_mm, against neither."""
    import torch._inductor.config as inductor

    out = []
    for fused, mm in [(False, False), (True, False), (False, True), (True, True)]:
        if left() < 45:
            say(f"  fused={fused} conv_1x1_as_mm={mm}: skipped (budget)")
            continue
        inductor.conv_1x1_as_mm = mm
        try:
            from photoz.nn import train

            orig = train.SpeedSettings.resolve.__func__

            def resolve(cls, cfg, _f=fused):
                return train.SpeedSettings(**dict(vars(orig(cls, cfg)), fused=_f))

            train.SpeedSettings.resolve = classmethod(resolve)
            r = bench_step(device, paper_config(width=width, dense=dense, batch_size=batch, device=device.type), 6,
                           iters=30, warmup=5)
        except Exception as exc:
            say(f"  fused={fused} conv_1x1_as_mm={mm}: failed: {exc!r}"[:600])
            continue
        finally:
            train.SpeedSettings.resolve = classmethod(orig)
            inductor.conv_1x1_as_mm = False
        r.update(fused=fused, conv_1x1_as_mm=mm)
        out.append(r)
        say(f"  fused={fused!s:<5} conv_1x1_as_mm={mm!s:<5} {r['images_per_s']:9,.0f} img/s "
            f"{r['s_per_iter'] * 1e3:7.1f} ms/iter, warm-up {r['warmup_s']:.1f} s")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny network and data set: checks the script on a CPU")
    ap.add_argument("--budget-s", type=float, default=480, help="skip the remaining parts once this much time is spent")
    ap.add_argument("--n-train", type=int, default=20480)
    ap.add_argument("--json", help="also write every number here")
    ap.add_argument("--parts", nargs="+", default=["loop", "parity", "inference", "profile", "step"],
                    choices=["loop", "parity", "inference", "profile", "step", "variants"],
                    help="what to run (variants: the step of 6 members with the fused 1x1 heads and/or inductor's "
                         "1x1 convolutions as matrix products, against the default)")
    a = ap.parse_args(argv)
    cuda = torch.cuda.is_available() and not a.tiny
    device = torch.device("cuda" if cuda else "cpu")
    width, dense, batch, n_train, n_val = (1.0, 1096, 128, a.n_train, 1024) if not a.tiny else (0.0625, 32, 16, 256, 64)
    res = {"environment": environment(device)}
    say("# benchmarks/bench_train.py" + (" --tiny" if a.tiny else ""))
    say(" ".join(f"{k}={v}" for k, v in res["environment"].items()))
    flops = count_flops(width, dense)
    res["flops"] = flops
    say(f"network width={width} dense={dense}: {flops['forward'] / 1e9:.3f} GFLOP forward, "
        f"{flops['train_step'] / 1e9:.3f} GFLOP per training image")
    rate = matmul_rate(device, torch.bfloat16 if cuda else torch.float32, n=8192 if cuda else 512, reps=20 if cuda else 3)
    res["matmul_flops"] = rate
    say(f"measured {'bf16' if cuda else 'fp32'} matmul rate: {rate / 1e12:.1f} TFLOP/s "
        f"(a training-step ceiling of {rate / flops['train_step']:,.0f} img/s)")

    def left():
        return a.budget_s - (time.time() - T0)

    with tempfile.TemporaryDirectory() as tmp:
        if "loop" not in a.parts:
            tmp = None
        work = Path(tmp or ".")
        if tmp is not None:
            (work / "shards").mkdir()
            write_shards(work / "shards", n_train, n_val)
        cache = work / "inductor-cache"
        say(f"\n## the real loop: python -m photoz train, {n_train:,} training and {n_val:,} validation galaxies "
            f"from shards on disk, batch {batch}/member, speed settings auto ({time.time() - T0:.0f} s)")
        jobs = [] if tmp is None else [("A_6members_cold_cache", list(range(6)), 3), ("B_6members_warm_cache", list(range(6)), 2),
                ("C_1member_warm_cache", [0], 2)]
        res["loop"] = []
        if a.tiny:
            jobs = jobs[2:]  # one member only: a check of the script, not a measurement
        for name, seeds, epochs in jobs:
            if left() < 60:
                say(f"  {name}: skipped (budget)")
                continue
            r = train_job(name, work, seeds, epochs, cache, width, dense, batch, device.type)
            if r is None:
                continue
            res["loop"].append(r)
            steady = r["images_per_s"][-1]
            say(f"  {name}: epochs {', '.join(f'{t:.1f} s' for t in r['epoch_seconds'])} -> "
                f"{', '.join(f'{v:,.0f}' for v in r['images_per_s'])} img/s summed; steady {steady:,.0f} img/s "
                f"({steady / r['members']:,.0f} per member); first-epoch overhead "
                f"{r['epoch_seconds'][0] - r['epoch_seconds'][-1]:.1f} s; process {r['wall_s']:.0f} s; "
                f"member-0 train loss {' '.join(f'{v:.3f}' for v in r['train_loss_member0'])}")

    if cuda and "parity" in a.parts and left() > 90:
        say(f"\n## GPU parity test ({time.time() - T0:.0f} s)")
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                            str(ROOT / "tests" / "test_nn_gpu_parity.py")], env=env, capture_output=True, text=True,
                           cwd=ROOT)
        tail = [ln for ln in p.stdout.splitlines() if "parity deviations" in ln or "passed" in ln or "failed" in ln
                or "Error" in ln or "assert" in ln]
        say("\n".join("  " + ln for ln in tail[-12:]))
        res["parity"] = {"returncode": p.returncode, "lines": tail}

    res["inference"] = []
    for comp in (False, True):
        if "inference" not in a.parts or left() < 45 or (comp and not cuda):
            continue
        try:
            r = bench_inference(device, batch=4096 if cuda else 64, n=65536 if cuda else 256, width=width, dense=dense,
                                compile=comp)
        except Exception as exc:
            say(f"inference compile={comp}: failed: {exc!r}"[:600])
            continue
        res["inference"].append(r)
        say(f"inference predict_pdfs compile={comp}: batch {r['batch']}, {r['images_per_s']:,.0f} img/s "
            f"(warm-up {r['warmup_s']:.1f} s)")

    say(f"\n## the step alone (bench_step, {time.time() - T0:.0f} s)")
    res["step"] = []
    configs = [] if "step" not in a.parts else [(1, batch, "auto", "auto"), (6, batch, "auto", "auto"), (6, batch, "auto", "false"),
               (6, batch, "false", "auto"), (1, 6 * batch, "auto", "auto")]
    for g, b, comp, graph in configs:
        if left() < 30:
            say(f"  members={g} batch={b} compile={comp} cuda_graph={graph}: skipped (budget)")
            continue
        if not cuda and graph == "auto":
            graph = "false"
        if a.tiny:
            comp = "false"  # a CPU compile per shape would take minutes
        try:
            cfg = paper_config(width=width, dense=dense, batch_size=b, device=device.type, compile=comp,
                               cuda_graph=graph)
            r = bench_step(device, cfg, g, iters=30 if cuda else 2, warmup=5 if cuda else 2)
        except Exception as exc:  # out of memory, or a failure of one configuration: report it and go on
            say(f"  members={g} batch={b} compile={comp} cuda_graph={graph}: failed: {exc!r}"[:600])
            if cuda:
                torch.cuda.empty_cache()
            continue
        r["tflops"] = r["images_per_s"] * flops["train_step"] / 1e12
        res["step"].append(r)
        say(f"  members={g} batch/member={b:<4} compile={r['compile']!s:<5} cuda_graph={r['cuda_graph']!s:<5} "
            f"{r['images_per_s']:9,.0f} img/s {r['s_per_iter'] * 1e3:7.1f} ms/iter {r['tflops']:6.1f} TFLOP/s "
            f"({100 * r['tflops'] * 1e12 / rate:.1f}% of matmul), warm-up {r['warmup_s']:.1f} s")

    if cuda and "profile" in a.parts and left() > 40:
        say(f"\n## where the time goes: 6 members, compiled, uncaptured, 3 steps under torch.profiler ({time.time() - T0:.0f} s)")
        try:
            res["profile"] = profile_step(device, width, dense, batch)
        except Exception as exc:  # the profiler may be unavailable on a machine: report and go on
            say(f"  profiler failed: {exc!r}")
    if cuda and "profile" in a.parts and left() > 20:
        say("\n## the first convolution (5 bands): forward + weight gradient, bf16, channels-last, batch 768")
        res["c1"] = c1_input_channels(device)

    if cuda and "variants" in a.parts:
        say(f"\n## variants of the 6-member step, batch 128, compiled, one CUDA graph ({time.time() - T0:.0f} s)")
        res["variants"] = step_variants(device, width, dense, batch, left)
    main_job = [r for r in res.get("loop", []) if r["members"] == 6]
    if main_job:
        best = max(r["images_per_s"][-1] for r in main_job)
        total = PROTOCOL["models"] * PROTOCOL["epochs"] * PROTOCOL["images"]
        res["projection"] = {"protocol": PROTOCOL, "images": total, "images_per_s": best, "gpu_hours": total / best / 3600}
        say(f"\nprojected main protocol ({PROTOCOL['models']} networks x {PROTOCOL['epochs']} epochs x "
            f"{PROTOCOL['images']:,} galaxies = {total:.3g} training images) at the loop's steady 6-member rate "
            f"{best:,.0f} img/s: {total / best / 3600:.2f} GPU-hours on this device")
    say(f"total {time.time() - T0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1, default=str))
    return res


if __name__ == "__main__":
    main()
