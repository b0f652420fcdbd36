#!/usr/bin/env python
"""CPU training benchmark of the photo-z CNN: old settings against new, side by side in one run.

    python benchmarks/bench_train_cpu.py | tee benchmarks/bench_train_cpu.txt

What it measures, all in the same run:

* FLOPs per training image (counted with ``torch.utils.flop_counter``) of the
  reduced and the full network;
* the cores' peak: a float32 (and bfloat16) matrix-product microbenchmark on
  one thread and on all threads;
* training throughput of ``photoz.nn.train.train_step`` (augmentation,
  forward, cross-entropy, backward, Adam; images resident in memory) for each
  setting, one thread per process as the workflow runs it: images/s per core,
  GFLOP/s from the counted FLOPs and the fraction of the measured matmul peak;
  per machine: one such process per core, all running at once;
* learning: validation sigma_MAD after the same epochs with the old and the new
  settings (``--learn-seeds``, four by default; synthetic galaxies of ``tests/test_nn_train.py``);
* the cost of ``torch.compile``: the first steps of each compiled setting with an
  empty inductor cache (a fresh temporary cache directory unless ``--warm-cache``),
  and per training job: a fresh process training one short epoch eagerly, compiled
  with an empty cache, and compiled with the cache the job before left on disk.

The machine may be shared with other jobs: repetitions of the settings are
INTERLEAVED (old, new, old, new, ...) and the comparison is the median of the
per-repetition ratios, which a shared machine slows alike; absolute numbers
are lower bounds. The load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from photoz.nn.bench import count_flops, matmul_rate  # noqa: E402
from photoz.nn.model import PhotoZNet  # noqa: E402
from photoz.nn.train import train_step  # noqa: E402

NETWORKS = {"reduced": {"width": 0.125, "dense": 128}, "full": {"width": 1.0, "dense": 1096}}

#: name -> (channels_last, fused layers, bf16 autocast, stacked members, batch per member, torch.compile)
SETTINGS = {
    "old: fp32 NCHW eager": (False, False, False, 1, 32, False),
    "previous: fp32 channels-last": (True, False, False, 1, 32, False),
    "fp32 channels-last, compiled": (True, False, False, 1, 32, True),
    "bf16 channels-last": (True, False, True, 1, 32, False),
    "bf16 channels-last, compiled": (True, False, True, 1, 32, True),
    "new: bf16 CL compiled, fused heads": (True, True, True, 1, 32, True),
    "new, 2 members in one process": (True, True, True, 2, 32, True),
    "new, batch 64": (True, True, True, 1, 64, True),
}
OLD, PREV, NEW = "old: fp32 NCHW eager", "previous: fp32 channels-last", "new: bf16 CL compiled, fused heads"
FULL = [OLD, PREV, "bf16 channels-last", "bf16 channels-last, compiled", NEW]


def _cpu_info():
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile") if f in flags]
    return model, isa


class Case:
    """One setting's model, optimizer and resident batch data."""

    def __init__(self, net, setting, n_data=512, seed=0):
        cl, fused, amp, g, b, comp = setting
        self.g, self.b, self.amp = g, b, amp
        self.nets = [PhotoZNet(**NETWORKS[net], seed=m).set_channels_last(cl).set_fused(fused) for m in range(g)]
        self.fwds = [torch.compile(m, dynamic=False) if comp else m for m in self.nets]
        self.opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in self.nets]
        gen = torch.Generator().manual_seed(seed)
        self.data = torch.randn(n_data, 5, 64, 64, generator=gen)
        self.y = torch.randint(0, 180, (n_data,), generator=gen)
        self.e = torch.rand(n_data, generator=gen)
        self.gen = gen

    def steps(self, k):
        """Run ``k`` training steps; returns the images processed."""
        for _ in range(k):
            idx = torch.randint(0, len(self.data), (self.g, self.b), generator=self.gen)
            codes = torch.randint(0, 8, (self.g, self.b), generator=self.gen)
            x = self.data.index_select(0, idx.reshape(-1)).reshape(self.g, self.b, 5, 64, 64)
            train_step(self.fwds, self.opts, x, codes, self.y[idx], self.e[idx], self.amp)
        return k * self.g * self.b


def _images_per_step(setting):
    return setting[3] * setting[4]


PEAK = {"float32": 0.0}


def _peak_sample(n=1024):
    """One more one-thread float32 matmul measurement; the peak is the best of all (shared machine)."""
    r = matmul_rate(torch.device("cpu"), torch.float32, n=n, reps=3)
    PEAK["float32"] = max(PEAK["float32"], r)
    return r


def per_core(net, names, reps, images, threads=1):
    """Interleaved repetitions of each setting on ``threads`` threads: images/s per repetition."""
    torch.set_num_threads(threads)
    cases = {n: Case(net, SETTINGS[n]) for n in names}
    for n, c in cases.items():
        t = time.perf_counter()
        c.steps(2)  # warm-up (oneDNN primitive creation; torch.compile compiles here)
        if SETTINGS[n][5]:
            print(f"  {n}: first 2 steps (compilation) {time.perf_counter() - t:.1f} s", flush=True)
    out = {n: [] for n in names}
    for _ in range(reps):
        _peak_sample()
        for n, c in cases.items():
            k = max(1, images // _images_per_step(SETTINGS[n]))
            t = time.perf_counter()
            done = c.steps(k)
            out[n].append(done / (time.perf_counter() - t))
    return out


def _worker(net, names, conn):
    torch.set_num_threads(1)
    cases = {n: Case(net, SETTINGS[n], seed=os.getpid()) for n in names}
    t = time.perf_counter()
    for c in cases.values():
        c.steps(2)
    conn.send(("ready", time.perf_counter() - t))
    while True:
        msg = conn.recv()
        if msg is None:
            return
        name, k = msg
        conn.recv()  # start signal (all workers start together)
        t = time.perf_counter()
        cases[name].steps(k)
        conn.send(time.perf_counter() - t)


def per_machine(net, names, reps, images, n_proc):
    """``n_proc`` one-thread processes at once (the workflow's layout): summed images/s per repetition."""
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for _ in range(n_proc):
        a, b = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(net, names, b), daemon=True)
        p.start()
        pipes.append(a)
        procs.append(p)
    warm = [a.recv()[1] for a in pipes]
    print(f"  warm-up of the {n_proc} processes (first 2 steps of each setting; compiled ones found the main "
          f"process's code in the inductor cache): {' '.join(f'{w:.1f}' for w in warm)} s")
    out = {n: [] for n in names}
    for _ in range(reps):
        for n in names:
            k = max(1, images // _images_per_step(SETTINGS[n]))
            for a in pipes:
                a.send((n, k))
            for a in pipes:
                a.send("go")
            dts = [a.recv() for a in pipes]
            out[n].append(sum(k * _images_per_step(SETTINGS[n]) / dt for dt in dts))
    for a in pipes:
        a.send(None)
    for p in procs:
        p.join()
    return out


def learning(epochs, n_train, n_val, seeds, threads=1):
    """Validation sigma_MAD per epoch with the old and the new settings (interleaved by seed)."""
    import tempfile

    from test_nn_train import synthetic_galaxies

    from photoz.nn.data import ResidentImages
    from nn_settings import train_config
    from photoz.nn.train import train_members

    x, z, e = synthetic_galaxies(n_train + n_val, seed=11)
    tr, va = ResidentImages(x[:n_train], "cpu"), ResidentImages(x[n_train:], "cpu")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            for name, (cl, amp, comp) in (("old", ("false", "none", "false")), ("new", ("true", "bf16", "true"))):
                cfg = train_config(epochs=epochs, batch_size=32, learning_rate=1e-3, device="cpu", num_threads=threads,
                                  channels_last=cl, amp=amp, compile=comp, fused=comp, **NETWORKS["reduced"])
                t = time.perf_counter()
                hist = train_members(cfg, (tr, z[:n_train], e[:n_train]), (va, z[n_train:], e[n_train:]), [s],
                                     [Path(tmp) / f"{name}{s}"])[0]
                res.setdefault(name, []).append(([r["val_sigma_mad"] for r in hist], [r["val_loss"] for r in hist],
                                                 time.perf_counter() - t))
    return res


_JOB = """
import sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
sys.path[:0] = [{src!r}, {tests!r}]
from test_nn_train import synthetic_galaxies
from photoz.nn.data import ResidentImages
from nn_settings import train_config
from photoz.nn.train import train_members
x, z, e = synthetic_galaxies(200, seed=1)
tr, va = ResidentImages(x[:160], "cpu"), ResidentImages(x[160:], "cpu")
cfg = train_config(epochs=1, batch_size=32, learning_rate=1e-3, device="cpu", num_threads=1, width={width}, dense={dense},
                  channels_last="true", amp={amp!r}, compile={comp!r}, fused={comp!r})
with tempfile.TemporaryDirectory() as tmp:
    train_members(cfg, (tr, z[:160], e[:160]), (va, z[160:], e[160:]), [1], [Path(tmp) / "m"])
print(time.perf_counter() - t0)
"""


def compile_cost(net="reduced"):
    """Wall seconds of a fresh training process (1 epoch, 160 galaxies): eager, compiled cold, compiled warm."""
    import subprocess
    import tempfile

    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-inductor-job-") as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        for label, amp, comp in (("eager (previous default)", "none", "false"), ("compiled, empty cache", "bf16", "true"),
                                 ("compiled, cache from the job before", "bf16", "true")):
            code = _JOB.format(src=str(ROOT / "src"), tests=str(ROOT / "tests"), amp=amp, comp=comp, **NETWORKS[net])
            r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            out[label] = float(r.stdout.strip().splitlines()[-1])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions per setting")
    ap.add_argument("--images", type=int, default=256, help="training images per repetition (reduced network)")
    ap.add_argument("--full-images", type=int, default=32, help="training images per repetition (full network)")
    ap.add_argument("--full-reps", type=int, default=3, help="interleaved repetitions per setting (full network)")
    ap.add_argument("--learn-epochs", type=int, default=8)
    ap.add_argument("--learn-train", type=int, default=800)
    ap.add_argument("--learn-seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--default-images-per-epoch", type=float, default=16200,
                    help="training images of one epoch of all 16 models of the default run (10 main-trial "
                         "members x ~1,256 + noebv 1,256 + frac50 785 + frac20 314 + frac2 31 + s82only ~420 + "
                         "nos82 ~836)")
    ap.add_argument("--default-epochs", type=int, nargs="+", default=[10, 15])
    ap.add_argument("--logged-old-rate", type=float, default=320.0,
                    help="img/s per core of the old settings in the default run's logs (unloaded machine)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (checks the script)")
    ap.add_argument("--warm-cache", action="store_true",
                    help="use the usual inductor cache (default: an empty temporary one, so compilation is timed cold)")
    ap.add_argument("--no-learning", action="store_true", help="throughput only")
    a = ap.parse_args(argv)
    if a.quick:
        a.reps, a.full_reps, a.images, a.full_images = 2, 2, 64, 32
        a.learn_epochs, a.learn_train, a.learn_seeds = 1, 96, [1]
    if not a.warm_cache:
        import tempfile

        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    ncpu = os.cpu_count() or 1
    cpu, isa = _cpu_info()
    print(f"# bench_train_cpu  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"# machine: {platform.node()}, {cpu}, {ncpu} cores, ISA {' '.join(isa)}")
    print(f"# python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"mkldnn available={torch.backends.mkldnn.is_available()}, cpu capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"# SHARED MACHINE: load average at start {os.getloadavg()[0]:.2f} on {ncpu} cores. Settings are run "
          "interleaved; compare the RATIOS (median of per-repetition ratios), absolute rates are lower bounds.")

    flops = {net: count_flops(**cfg)["train_step"] for net, cfg in NETWORKS.items()}
    for net, f in flops.items():
        print(f"FLOPs per training image ({net}): {f / 1e9:.4f} GFLOP (forward + backward, counted)")

    torch.set_num_threads(1)
    n_mm = 256 if a.quick else 1536
    peak = {}
    for threads in sorted({1, ncpu}):
        torch.set_num_threads(threads)
        for dt in (torch.float32, torch.bfloat16):
            r = max(matmul_rate(torch.device("cpu"), dt, n=n_mm, reps=3) for _ in range(3))
            peak[(threads, dt)] = r
            print(f"matmul {str(dt).split('.')[-1]:8s} n={n_mm} on {threads} thread(s): {r / 1e9:7.1f} GFLOP/s")
    PEAK["float32"] = peak[(1, torch.float32)]

    names = list(SETTINGS)
    for net in ("reduced", "full"):
        sel = names if net == "reduced" else FULL
        imgs = a.images if net == "reduced" else a.full_images
        reps = a.reps if net == "reduced" else a.full_reps
        print(f"\n## {net} network, one thread (per core), {reps} interleaved repetitions of ~{imgs} images")
        res = per_core(net, sel, reps, imgs)
        base = np.array(res[OLD])
        peak1 = PEAK["float32"]
        print(f"one-thread float32 matmul peak (best of all samples so far): {peak1 / 1e9:.1f} GFLOP/s")
        print(f"{'setting':34s} {'img/s best':>10s} {'GFLOP/s':>8s} {'of peak':>8s} {'ratio to old (median, min-max)':>32s}")
        for n in sel:
            v = np.array(res[n])
            ratio = v / base
            gf = v.max() * flops[net] / 1e9
            print(f"{n:34s} {v.max():10.1f} {gf:8.2f} {100 * gf * 1e9 / peak1:7.1f}% "
                  f"{np.median(ratio):10.2f}x ({ratio.min():.2f}-{ratio.max():.2f})")
        if net == "reduced" and ncpu > 1:
            print(f"\n## reduced network, per machine: {ncpu} one-thread processes at once")
            pm = per_machine(net, [OLD, PREV, NEW], a.reps, imgs, ncpu)
            pb = np.array(pm[OLD])
            for n in (OLD, PREV, NEW):
                v = np.array(pm[n])
                print(f"{n:34s} {v.max():10.1f} img/s per machine  ratio to old {np.median(v / pb):.2f}x, "
                      f"to previous {np.median(v / np.array(pm[PREV])):.2f}x")
            ratio = float(np.median(np.array(pm[NEW]) / pb))
            base_rate = a.logged_old_rate * ncpu
            for ep in a.default_epochs:
                imgs = a.default_images_per_epoch * ep
                print(f"default run, {ep} epochs ({imgs:,.0f} training images): training steps take "
                      f"{imgs / base_rate / 60:.1f} min with the old settings at the logged "
                      f"{a.logged_old_rate:.0f} img/s per core, {imgs / (base_rate * ratio) / 60:.1f} min with the "
                      f"new (old rate x this run's per-machine ratio {ratio:.2f}); validation, checkpoints and "
                      "job start-up come on top")

    print("\n## cost of compiling, per training job: a fresh process trains the reduced network for one epoch "
          "of 160 galaxies (5 batches of 32), start-up included")
    for label, sec in compile_cost().items():
        print(f"{label:38s} {sec:6.1f} s")
    if a.no_learning:
        print(f"# load average at end {os.getloadavg()[0]:.2f}")
        return
    print(f"\n## learning: reduced network, {a.learn_train} synthetic galaxies, batch 32, lr 1e-3, "
          f"{a.learn_epochs} epochs, seeds {a.learn_seeds}")
    lr = learning(a.learn_epochs, a.learn_train, max(64, a.learn_train // 5), a.learn_seeds)
    for name, runs in lr.items():
        for s, (sm, vl, sec) in zip(a.learn_seeds, runs):
            print(f"{name} seed {s}: val sigma_MAD per epoch {' '.join(f'{v:.4f}' for v in sm)}; "
                  f"final val loss {vl[-1]:.4f} ({sec:.0f} s)")
    fin = {k: np.array([r[0][-1] for r in v]) for k, v in lr.items()}
    print(f"final val sigma_MAD: old {fin['old'].mean():.4f} new {fin['new'].mean():.4f} "
          f"(difference {fin['new'].mean() - fin['old'].mean():+.4f}; seed-to-seed spread old "
          f"{np.ptp(fin['old']):.4f} new {np.ptp(fin['new']):.4f})")
    print(f"# load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
