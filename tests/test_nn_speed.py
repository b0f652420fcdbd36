"""Every speed setting of the training loop runs on the CPU and learns like plain fp32 eager.

Reference: fp32, NCHW, the plain layer-by-layer network, no compile, images
read from shard memory maps. Each setting is switched on alone for a tiny run
(2 epochs of 10 steps) and compared with the reference on the loss of every
epoch and on the predicted redshifts of the validation galaxies:

==========================  ===========================  ==============================
setting                     loss per epoch (relative)    predicted z (absolute)
==========================  ===========================  ==============================
channels-last, fused,       1e-3                         1e-4 (float32 rounding only)
  compile, resident images  (resident: identical)
bf16 autocast (also with    1e-2                         2e-3 (bf16 has 8 mantissa bits)
  channels-last + compile,
  the CPU default)
==========================  ===========================  ==============================

The CPU default (``auto``: channels-last, and bf16 + compile where the CPU has
native bf16 and a C++ compiler) is also checked for a partial last batch (run
eagerly beside the compiled full batches) and for a bit-identical kill and
resume.

Stacked members equal separate runs (``test_nn_train.py``). What only runs on
CUDA is listed once in ``photoz.nn.train.CUDA_ONLY`` and skipped here with that
reason where no GPU is present.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photoz import bins
from photoz.nn.data import MemmapImages, ResidentImages, ShardStore, SplitArrays
from photoz.nn.model import PhotoZNet
from nn_settings import train_config
from photoz.nn.train import CUDA_ONLY, SpeedSettings, cpu_compiler, load_member, train_members
from test_nn_train import synthetic_galaxies

REFERENCE = dict(width=0.0625, dense=32, batch_size=16, device="cpu", num_threads=1, epochs=2, learning_rate=1e-3,
                 label_sigma_z=0.0,  # one-hot targets, as when the tolerances were measured
                 amp="none", channels_last="false", compile="false", fused=False)  # the old CPU default
# measured: fp32 2.3e-4 / 7e-6 (fused heads; 1.2e-5 when the dense layers were one-member batched matmuls:
# Adam turns rounding in near-zero gradients into learning-rate-sized steps), bf16 2.5e-3 / 9e-5
TOL = {"fp32": (1e-3, 1e-4), "bf16": (1e-2, 2e-3)}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """160 training and 32 validation galaxies in two shards, as memmap and as resident sources."""
    x, z, e = synthetic_galaxies(192, seed=6)
    d = tmp_path_factory.mktemp("shards")
    np.save(d / "shard-0000.npy", x[:100])
    np.save(d / "shard-0001.npy", x[100:])
    shard, row = np.repeat([0, 1], [100, 92]), np.r_[np.arange(100), np.arange(92)]
    ids = np.arange(192)
    tr = SplitArrays(ids[:160], shard[:160], row[:160], z[:160], e[:160])
    va = SplitArrays(ids[160:], shard[160:], row[160:], z[160:], e[160:])
    store = ShardStore(d)
    return {"store": store, "train": tr, "val": va,
            "memmap": (MemmapImages(store, tr, "cpu"), MemmapImages(store, va, "cpu")),
            "resident": (ResidentImages.from_store(store, tr, "cpu"), ResidentImages.from_store(store, va, "cpu"))}


def _run(shards, out, source="memmap", **settings):
    cfg = train_config(**dict(REFERENCE, **settings))
    tr, va = shards["train"], shards["val"]
    trs, vas = shards[source]
    hist = train_members(cfg, (trs, tr.z, tr.ebv), (vas, va.z, va.ebv), [5], [out])[0]
    model, _ = load_member(out / "checkpoint.pt")
    with torch.no_grad():
        p = torch.softmax(model(vas.batch(torch.arange(len(vas))), torch.as_tensor(va.ebv)), -1).double().numpy()
    return [r["train_loss"] for r in hist], [r["val_loss"] for r in hist], p @ bins.midpoints(cfg.n_bins, cfg.z_min, cfg.z_max)


@pytest.fixture(scope="module")
def reference(shards, tmp_path_factory):
    return _run(shards, tmp_path_factory.mktemp("ref") / "m")


def _assert_close(run, ref, kind):
    rtol, ztol = TOL[kind]
    np.testing.assert_allclose(run[0], ref[0], rtol=rtol, err_msg="train loss per epoch")
    np.testing.assert_allclose(run[1], ref[1], rtol=rtol, err_msg="validation loss per epoch")
    np.testing.assert_allclose(run[2], ref[2], atol=ztol, err_msg="predicted z of the validation galaxies")


@pytest.mark.parametrize("settings, kind", [
    ({"channels_last": "true"}, "fp32"),
    ({"fused": True}, "fp32"),
    ({"channels_last": "true", "fused": True}, "fp32"),
    ({"amp": "bf16"}, "bf16"),
    ({"amp": "bf16", "channels_last": "true", "fused": True}, "bf16"),
], ids=["channels_last", "fused", "channels_last+fused", "bf16", "bf16+channels_last+fused"])
def test_setting_learns_like_fp32_eager(shards, reference, tmp_path, settings, kind):
    run = _run(shards, tmp_path / "m", **settings)
    _assert_close(run, reference, kind)
    if kind == "fp32" and settings.get("fused"):
        assert run[0] != reference[0]  # the fused path did run (its rounding differs)


def test_resident_images_on_the_cpu_are_the_memmap_path(shards, reference, tmp_path):
    """The resident path (images held in device memory; here the CPU) learns bit for bit the same."""
    run = _run(shards, tmp_path / "m", source="resident")
    assert run[0] == reference[0] and run[1] == reference[1]
    np.testing.assert_array_equal(run[2], reference[2])


NEW_CPU = {"channels_last": "true", "amp": "bf16", "compile": "true", "fused": True}  # auto with native bf16


def test_auto_resolves_to_the_measured_cpu_settings(monkeypatch):
    """auto on a CPU: channels-last; bf16 + compile (+ fused heads) only with native bf16 AND a C++ compiler."""
    from photoz.nn import train

    cfg = train_config(device="cpu")
    for bf16, cxx, want in [(True, "/usr/bin/g++", (True, True)), (True, None, (False, False)),
                            (False, "/usr/bin/g++", (False, False))]:
        monkeypatch.setattr(train, "cpu_has_native_bf16", lambda: bf16)
        monkeypatch.setattr(train, "cpu_compiler", lambda: cxx)
        sp = SpeedSettings.resolve(cfg)
        assert (sp.amp, sp.compile, sp.fused) == want + (want[1],) and sp.channels_last
        assert SpeedSettings.resolve(train_config(device="cpu", amp="none", compile="false")).amp is False
    # explicit settings win over auto
    sp = SpeedSettings.resolve(train_config(device="cpu", amp="bf16", compile="true", channels_last="false"))
    assert (sp.amp, sp.compile, sp.channels_last) == (True, True, False)


@pytest.mark.slow
def test_new_cpu_default_compiled_bf16_learns_like_fp32_and_resumes_bit_identically(shards, tmp_path):
    """channels-last + bf16 + torch.compile (inductor, C++ kernels built with g++) on the CPU.

    Batch 24 on 160 galaxies: 6 compiled full batches and one partial batch run
    eagerly per epoch. Learns like the fp32 eager reference (bf16 tolerances);
    killed after 9 iterations and resumed, it ends bit-identical to the unkilled run.
    """
    pytest.importorskip("torch._inductor")
    if cpu_compiler() is None:
        pytest.skip("no C++ compiler for inductor")
    ref = _run(shards, tmp_path / "r", batch_size=24)
    run = _run(shards, tmp_path / "c", batch_size=24, **NEW_CPU)
    _assert_close(run, ref, "bf16")
    assert run[0] != ref[0]  # bf16 did run
    cfg = train_config(**dict(REFERENCE, batch_size=24, **NEW_CPU))
    tr, va = shards["train"], shards["val"]
    trs, vas = shards["memmap"]
    assert train_members(cfg, (trs, tr.z, tr.ebv), (vas, va.z, va.ebv), [5], [tmp_path / "k"], stop_after_iterations=9) is None
    hist = train_members(cfg, (trs, tr.z, tr.ebv), (vas, va.z, va.ebv), [5], [tmp_path / "k"])[0]
    assert [r["train_loss"] for r in hist] == run[0] and [r["val_loss"] for r in hist] == run[1]


def test_fused_layers_compute_the_plain_network():
    """Fused 1x1 heads: same outputs and gradients as the layer-by-layer network, channels-last or not."""
    torch.manual_seed(0)
    for seed in (0, 3):
        for cl in (False, True):
            m = PhotoZNet(0.125, 32, seed=seed).set_channels_last(cl)
            x, e = torch.randn(4, 5, 64, 64), torch.rand(4)
            outs, grads = [], []
            for fused in (True, False):
                m.zero_grad()
                y = m.set_fused(fused)(x, e)
                (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
                outs.append(y.detach())
                grads.append([p.grad.clone() for p in m.parameters()])
            torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
            for (name, _), a, b in zip(m.named_parameters(), *grads):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()), msg=name)


def test_kill_and_resume_bit_identical_with_channels_last(shards, tmp_path):
    """Channels-last (the CPU default without native bf16) keeps a killed run bit-identical to an unkilled one."""
    fast = {"channels_last": "true"}
    a = _run(shards, tmp_path / "a", **fast)
    cfg = train_config(**dict(REFERENCE, **fast))
    tr, va = shards["train"], shards["val"]
    trs, vas = shards["memmap"]
    assert train_members(cfg, (trs, tr.z, tr.ebv), (vas, va.z, va.ebv), [5], [tmp_path / "b"], stop_after_iterations=13) is None
    b_hist = train_members(cfg, (trs, tr.z, tr.ebv), (vas, va.z, va.ebv), [5], [tmp_path / "b"])[0]
    assert [r["train_loss"] for r in b_hist] == a[0] and [r["val_loss"] for r in b_hist] == a[1]


@pytest.mark.parametrize("what", sorted(CUDA_ONLY))
def test_cuda_only_settings(what, shards, reference, tmp_path):
    """On a GPU: a tiny run with every CUDA setting on (auto) learns like the CPU reference (bf16 tolerances)."""
    if not torch.cuda.is_available():
        pytest.skip(f"needs CUDA: {CUDA_ONLY[what]}")
    run = _run(shards, tmp_path / "m", device="cuda", amp="auto", channels_last="auto", compile="false", fused=True)
    _assert_close(run, reference, "bf16")
