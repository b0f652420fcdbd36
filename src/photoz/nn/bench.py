"""Throughput benchmark of the photo-z CNN (torch and numpy only).

Measures, on whatever device torch sees:

* model FLOPs per image, counted with ``torch.utils.flop_counter.FlopCounterMode``
  (forward; and forward + backward for a training step);
* the device's dense matrix-multiply rate (bf16 on CUDA, float32 on CPU), the
  yardstick for the achieved fraction;
* training throughput (images/s summed over all members trained at once,
  batch ``B`` per member) of the training loop's own step functions
  (``photoz.nn.train``: ``train_step`` one member after the other, or
  ``GraphedStep``, all members in one CUDA graph on one stream each), built by
  the loop's own ``_build`` from a ``TrainConfig``: GPU-resident data, GPU
  augmentation, bf16 autocast, channels-last, ``torch.compile``;
* inference throughput of ``photoz.nn.predict.predict_pdfs``.

The whole loop as the ``train`` rule runs it (shards on disk, checkpoints,
validation) is timed by ``benchmarks/bench_train_gpu.py``. Nothing is
estimated that is not measured in the same run.
"""

from __future__ import annotations

import datetime
import platform
import time
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from .model import IMAGE_SIZE, N_BANDS, PhotoZNet

__all__ = ["count_flops", "matmul_rate", "bench_step", "bench_inference", "environment", "PROTOCOL", "PAPER_SETTINGS",
           "paper_config"]

#: The paper's main protocol: 30 networks (5 folds x 6 members), 30 epochs, 393,000 training galaxies.
PROTOCOL = {"models": 30, "epochs": 30, "images": 393_000}

#: ``config/sdss-dr12.yaml``'s training settings (the paper's protocol, the schema's defaults
#: filled in) as :class:`~photoz.nn.train.TrainConfig` fields, for the benchmarks: the device
#: machine has no YAML reader, so they are restated here, and
#: ``tests/test_nn_settings.py`` checks them against the config.
PAPER_SETTINGS = {
    "epochs": 30, "max_iterations": 120000, "min_iterations": 0, "batch_size": 128, "learning_rate": 1e-4, "label_sigma_z": 0.0,
    "average_fraction": 0.25,
    "device": "cuda", "num_threads": 8, "width": 1.0, "dense": 1096, "ebv_input": True,
    "n_bins": 180, "z_min": 0.0, "z_max": 0.4, "amp": "auto", "channels_last": "auto", "compile": "auto",
    "resident": "auto", "resident_dtype": "float32", "eval_batch_size": 1024, "fused": "auto", "cuda_graph": "auto",
}


def paper_config(**override):
    """A ``TrainConfig`` of the paper's protocol (``PAPER_SETTINGS``) with ``override`` applied."""
    from .train import TrainConfig

    return TrainConfig(**{**PAPER_SETTINGS, **override})


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(width=1.0, dense=1096, batch=2):
    """FLOPs per image of the forward pass and of a training step (forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = PhotoZNet(width=width, dense=dense)
    x = torch.randn(batch, N_BANDS, IMAGE_SIZE, IMAGE_SIZE)
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


def bench_step(device, cfg, members=1, iters=20, warmup=5, n_data=4096):
    """Training images/s (summed over members) of the loop's step on device-resident data.

    ``cfg`` is the :class:`~photoz.nn.train.TrainConfig` (e.g. :func:`paper_config` with the network,
    ``batch_size`` and speed settings to measure). The members, optimizers and forward functions come
    from ``photoz.nn.train._build`` with its speed settings (``auto`` as the loop resolves it); the
    step is ``GraphedStep`` when a CUDA graph is on, else ``train_step``. ``warmup_s`` is the time of
    the first ``warmup`` steps (compilation, cuDNN's algorithm search, the graph's capture).
    """
    from .train import GraphedStep, SpeedSettings, _build, _configure_torch, augment_codes, train_step

    batch = cfg.batch_size
    sp = SpeedSettings.resolve(cfg)
    _configure_torch(cfg, sp)
    seeds = list(range(members))
    nets, opts, fwds = _build(cfg, sp, seeds)
    step = GraphedStep(fwds, opts, (members, batch), sp.amp, sp.device) if sp.graph else partial(train_step, fwds, opts, amp=sp.amp)
    gen = torch.Generator(device="cpu").manual_seed(0)
    data = torch.randn(n_data, N_BANDS, IMAGE_SIZE, IMAGE_SIZE, generator=gen).to(device)
    y_all = torch.randint(0, cfg.n_bins, (n_data,), generator=gen).to(device)
    e_all = torch.rand(n_data, generator=gen).to(device)
    order = torch.as_tensor(np.stack([np.random.default_rng(s).integers(0, n_data, (warmup + iters) * batch) for s in seeds])).to(device)
    codes = torch.as_tensor(np.stack([augment_codes(s, 0, (warmup + iters) * batch) for s in seeds])).to(device)

    def one(i):
        idx = order[:, i * batch:(i + 1) * batch]
        x = data.index_select(0, idx.reshape(-1)).reshape(members, batch, N_BANDS, IMAGE_SIZE, IMAGE_SIZE)
        return step(x, codes[:, i * batch:(i + 1) * batch], y_all[idx], e_all[idx])

    t0 = time.perf_counter()
    for i in range(warmup):
        one(i)
    _sync(device)
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(warmup, warmup + iters):
        loss = one(i)
    _sync(device)
    dt = time.perf_counter() - t0
    if not torch.isfinite(loss).all():
        raise RuntimeError(f"bench_step: non-finite loss {loss.tolist()}")
    return {"members": members, "batch": batch, "compile": sp.compile, "cuda_graph": sp.graph, "amp": sp.amp,
            "images_per_s": members * batch * iters / dt, "s_per_iter": dt / iters, "warmup_s": t_warm}


def bench_inference(device, batch=4096, n=32768, width=1.0, dense=1096, compile=False):
    """Inference images/s of ``predict_pdfs`` (softmax PDFs copied back to the host) on ``n`` resident images."""
    from .data import ResidentImages
    from .predict import predict_pdfs

    cuda = device.type == "cuda"
    model = PhotoZNet(width=width, dense=dense)
    gen = torch.Generator(device="cpu").manual_seed(1)
    src = ResidentImages(torch.randn(n, N_BANDS, IMAGE_SIZE, IMAGE_SIZE, generator=gen).numpy(), device)
    ebv = torch.rand(n, generator=gen).numpy()
    run = partial(predict_pdfs, model, src, ebv, batch, device, amp=cuda, channels_last=True, compile=compile)
    t0 = time.perf_counter()
    run()  # warm-up (compilation, cuDNN's algorithm search)
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = run()
    dt = time.perf_counter() - t0
    if not np.allclose(p.sum(1), 1, atol=1e-3):
        raise RuntimeError("bench_inference: PDFs do not sum to 1")
    return {"batch": batch, "n": n, "compile": compile, "images_per_s": n / dt, "warmup_s": t_warm}


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
