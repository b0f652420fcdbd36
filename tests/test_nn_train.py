"""Training: it learns on synthetic colours, resumes exactly after a kill, augments correctly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photoz import metrics
from photoz.nn.data import ResidentImages
from nn_settings import config_json, train_config
from photoz.nn.train import (augment, average_window, batch_order, class_targets, load_member, n_epochs,
                             train_members)


def synthetic_galaxies(n, seed=0):
    """Gaussian blobs whose ugriz colours redden with redshift (the signal to learn)."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.02, 0.35, n)
    yy, xx = np.mgrid[:64, :64] - 31.5
    size = rng.uniform(2, 5, n)[:, None, None]
    prof = np.exp(-0.5 * (xx ** 2 + yy ** 2)[None] / size ** 2)
    amp = 10 ** rng.uniform(0.5, 1.2, n)
    slope = np.array([-3.0, -1.5, 0.0, 1.0, 2.0])
    colour = 10 ** (2.0 * slope[None] * (z[:, None] - 0.18))
    img = amp[:, None, None, None] * colour[:, :, None, None] * prof[:, None]
    img = img + rng.normal(0, 0.05, img.shape)
    return img.astype(np.float32), z, rng.uniform(0, 0.1, n).astype(np.float32)


# the plain fp32 path (the speed settings are tested in test_nn_speed.py; compiling here would
# cost a cold compilation per network shape)
TINY = dict(width=0.0625, dense=32, batch_size=16, device="cpu", num_threads=1, amp="none", compile="false")


@pytest.fixture(scope="module")
def data():
    """480 training and 80 validation galaxies."""
    x, z, e = synthetic_galaxies(560, seed=3)
    return (ResidentImages(x[:480], "cpu"), z[:480], e[:480], ResidentImages(x[480:], "cpu"), z[480:], e[480:])


@pytest.fixture(scope="module")
def small():
    """160 training and 32 validation galaxies (10 steps of 16 per epoch)."""
    x, z, e = synthetic_galaxies(192, seed=4)
    return (ResidentImages(x[:160], "cpu"), z[:160], e[:160], ResidentImages(x[160:], "cpu"), z[160:], e[160:])


def test_tiny_run_learns(data, tmp_path):
    tr, zt, et, va, zv, ev = data
    cfg = train_config(epochs=4, learning_rate=1e-3, **dict(TINY, dense=64))
    hist = train_members(cfg, (tr, zt, et), (va, zv, ev), [7], [tmp_path / "m"])[0]
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4]
    assert hist[-1]["iteration"] == 4 * 30
    assert hist[-1]["val_loss"] < hist[0]["val_loss"] - 0.1
    const = np.full_like(zv, np.median(zt))
    assert hist[-1]["val_sigma_mad"] < 0.7 * metrics.sigma_mad(metrics.delta_z(const, zv))
    out = tmp_path / "m"
    assert (out / "checkpoint.pt").exists() and (out / "best.pt").exists() and not (out / "resume.pt").exists()
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("epoch,iteration,train_loss,val_loss,val_sigma_mad,seconds,val_pit_0")
    assert len(lines) == 5
    pit = [float(v) for v in lines[-1].split(",")[6:]]
    assert len(pit) == 10 and sum(pit) == pytest.approx(1.0, abs=1e-3)
    model, ck = load_member(out / "best.pt")
    best_epoch = int(np.argmin([r["val_loss"] for r in hist])) + 1
    assert ck["epoch"] == best_epoch and ck["seed"] == 7
    # the best weights reproduce the recorded validation loss
    with torch.no_grad():
        logits = model(va.images, torch.as_tensor(ev))
        y = torch.as_tensor(np.floor(zv / 0.4 * 180).astype(np.int64))
        loss = torch.nn.functional.cross_entropy(logits, y).item()
    assert loss == pytest.approx(hist[best_epoch - 1]["val_loss"], rel=1e-4)


def test_average_window_is_the_last_fraction_of_the_epochs_run():
    assert average_window(train_config(epochs=20, batch_size=32), 3080) == (16, 20)   # the default: the last 5 of 20
    assert average_window(train_config(epochs=12, batch_size=32, average_fraction=0.25), 18000) == (10, 12)
    assert average_window(train_config(epochs=3, average_fraction=0.25), 160) == (3, 3)  # at least the last epoch
    assert average_window(train_config(epochs=4, average_fraction=1.0), 160) == (1, 4)
    # max_iterations ends the run at epoch 7 (100 steps of 16 per epoch): the window is its last 2 epochs
    assert average_window(train_config(epochs=20, batch_size=16, max_iterations=650, average_fraction=0.25), 1600) == (6, 7)
    # min_iterations lengthens a small set's run, and its window with it
    assert average_window(train_config(epochs=2, batch_size=16, min_iterations=80, average_fraction=0.5), 160) == (5, 8)


def test_average_is_the_mean_of_the_window_and_survives_a_kill(small, tmp_path):
    """average.pt holds the mean of the weights of the window's epochs (here 2 and 3 of 3); a job killed
    inside the window resumes with the running sum and writes the same file bit for bit."""
    tr, zt, et, va, zv, ev = small
    cfg = train_config(epochs=3, learning_rate=1e-3, average_fraction=0.67, **TINY)
    args = ((tr, zt, et), (va, zv, ev), [5])
    train_members(cfg, *args, [tmp_path / "a"])
    assert train_members(cfg, *args, [tmp_path / "b"], stop_after_iterations=25) is None   # killed in epoch 3
    epoch2 = torch.load(tmp_path / "b" / "resume.pt", weights_only=False)
    assert epoch2["epoch"] == 2 and epoch2["average_count"] == 1
    train_members(cfg, *args, [tmp_path / "b"])
    a, b = (torch.load(tmp_path / d / "average.pt", weights_only=False) for d in "ab")
    last = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert a["averaged_epochs"] == [2, 3] and a["epoch"] == 3
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
        assert torch.allclose(v, (epoch2["model"][k] + last["model"][k]) / 2, rtol=0, atol=1e-7), k
    assert any(not torch.equal(v, last["model"][k]) for k, v in a["model"].items())  # not the last epoch's weights
    # its recorded validation loss is that of the averaged weights, loaded as predict loads them
    model, _ = load_member(tmp_path / "a" / "average.pt")
    with torch.no_grad():
        logits = model(va.images, torch.as_tensor(ev))
        y = torch.as_tensor(np.floor(zv / 0.4 * 180).astype(np.int64))
        assert torch.nn.functional.cross_entropy(logits, y).item() == pytest.approx(a["val_loss"], rel=1e-4)


def test_kill_and_resume_is_identical(small, tmp_path):
    tr, zt, et, va, zv, ev = small
    cfg = train_config(epochs=3, learning_rate=1e-3, **TINY)
    ref = train_members(cfg, (tr, zt, et), (va, zv, ev), [3], [tmp_path / "a"])[0]
    # killed in the middle of epoch 2 (after 10 + 7 iterations), then restarted twice
    assert train_members(cfg, (tr, zt, et), (va, zv, ev), [3], [tmp_path / "b"], stop_after_iterations=17) is None
    assert (tmp_path / "b" / "resume.pt").exists() and not (tmp_path / "b" / "checkpoint.pt").exists()
    # a scheduler removes the declared outputs of a failed job; resume.pt stays
    (tmp_path / "b" / "best.pt").unlink()
    (tmp_path / "b" / "metrics.csv").unlink()
    assert train_members(cfg, (tr, zt, et), (va, zv, ev), [3], [tmp_path / "b"], stop_after_iterations=13) is None
    res = train_members(cfg, (tr, zt, et), (va, zv, ev), [3], [tmp_path / "b"])[0]
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(res) == strip(ref)
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ba = torch.load(tmp_path / "a" / "best.pt", weights_only=False)
    bb = torch.load(tmp_path / "b" / "best.pt", weights_only=False)
    assert ba["epoch"] == bb["epoch"] and all(torch.equal(ba["model"][k], bb["model"][k]) for k in ba["model"])
    assert (tmp_path / "a" / "metrics.csv").read_text().count("\n") == (tmp_path / "b" / "metrics.csv").read_text().count("\n") == 4
    for name, st in a["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["optimizer"]["state"][name][k])), (name, k)
    assert a["epoch"] == b["epoch"] == 3 and a["iteration"] == b["iteration"] == 30
    assert set(a["rng"]) >= {"torch", "numpy", "python"}


def test_settings_change_restarts(small, tmp_path):
    tr, zt, et, va, zv, ev = small
    cfg = train_config(epochs=2, learning_rate=1e-3, **TINY)
    train_members(cfg, (tr, zt, et), (va, zv, ev), [1], [tmp_path / "c"], stop_after_iterations=12)
    cfg2 = train_config(epochs=2, learning_rate=5e-4, **TINY)
    hist = train_members(cfg2, (tr, zt, et), (va, zv, ev), [1], [tmp_path / "c"], stop_after_iterations=None)[0]
    ref = train_members(cfg2, (tr, zt, et), (va, zv, ev), [1], [tmp_path / "d"])[0]
    assert [r["val_loss"] for r in hist] == [r["val_loss"] for r in ref]


def test_max_iterations_stops_mid_epoch(small, tmp_path):
    tr, zt, et, va, zv, ev = small
    cfg = train_config(epochs=5, max_iterations=14, learning_rate=1e-3, **TINY)
    hist = train_members(cfg, (tr, zt, et), (va, zv, ev), [2], [tmp_path / "e"])[0]
    assert [(r["epoch"], r["iteration"]) for r in hist] == [(1, 10), (2, 14)]


def test_min_iterations_adds_epochs_to_small_sets(small, tmp_path):
    tr, zt, et, va, zv, ev = small
    cfg = train_config(epochs=1, min_iterations=25, learning_rate=1e-3, **TINY)
    hist = train_members(cfg, (tr, zt, et), (va, zv, ev), [2], [tmp_path / "m"])[0]
    # 10 steps per epoch: 3 epochs reach 25 iterations
    assert [(r["epoch"], r["iteration"]) for r in hist] == [(1, 10), (2, 20), (3, 30)]
    assert n_epochs(train_config(epochs=4, min_iterations=25, **TINY), 1000) == 4


def test_members_trained_together_equal_separate_runs(small, tmp_path):
    """Two members in one process: each learns exactly (bit for bit on the CPU) what it learns alone."""
    tr, zt, et, va, zv, ev = small
    cfg = train_config(epochs=1, learning_rate=1e-3, **TINY)
    both = train_members(cfg, (tr, zt, et), (va, zv, ev), [4, 9], [tmp_path / "s4", tmp_path / "s9"])
    one = train_members(cfg, (tr, zt, et), (va, zv, ev), [9], [tmp_path / "t9"])[0]
    assert both[1][0]["val_loss"] == one[0]["val_loss"] and both[1][0]["train_loss"] == one[0]["train_loss"]
    assert both[0][0]["val_loss"] != both[1][0]["val_loss"]
    m1, _ = load_member(tmp_path / "s9" / "checkpoint.pt")
    m2, _ = load_member(tmp_path / "t9" / "checkpoint.pt")
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(v1, v2), k


def test_augment_gives_the_eight_dihedral_transforms():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(1, 2, 3, 4, 4).expand(8, 2, 3, 4, 4)
    codes = torch.arange(8).reshape(8, 1).expand(8, 2)
    y = augment(x, codes)
    assert torch.equal(y[0], x[0])
    assert torch.equal(y[1], torch.rot90(x[1], 1, (-2, -1)))
    assert torch.equal(y[2], torch.rot90(x[2], 2, (-2, -1)))
    assert torch.equal(y[3], torch.rot90(x[3], 3, (-2, -1)))
    assert torch.equal(y[4], x[4].flip(-1))
    assert torch.equal(y[5], torch.rot90(x[5].flip(-1), 1, (-2, -1)))
    assert len({tuple(y[k, 0, 0].flatten().tolist()) for k in range(8)}) == 8


def test_batch_order_depends_on_seed_and_epoch_only():
    assert np.array_equal(batch_order(5, 2, 100), batch_order(5, 2, 100))
    assert not np.array_equal(batch_order(5, 2, 100), batch_order(5, 3, 100))
    assert not np.array_equal(batch_order(5, 2, 100), batch_order(6, 2, 100))
    assert sorted(batch_order(5, 2, 100)) == list(range(100))


def test_without_validation_galaxies(small, tmp_path):
    tr, zt, et, va, zv, ev = small
    empty = ResidentImages(np.zeros((0, 5, 64, 64), np.float32), "cpu")
    cfg = train_config(epochs=1, max_iterations=3, learning_rate=1e-3, **TINY)
    hist = train_members(cfg, (tr, zt, et), (empty, zv[:0], ev[:0]), [1], [tmp_path / "v"])[0]
    assert len(hist) == 1 and np.isnan(hist[0]["val_loss"])
    assert (tmp_path / "v" / "best.pt").exists()


def test_train_command_skips_a_finished_member_and_force_retrains(tmp_path):
    """``photoz train`` keeps a member that finished with the same settings; --force or new settings retrain it."""
    import json

    from photoz.nn.data import SplitArrays
    from photoz.nn.train import main

    x, z, e = synthetic_galaxies(64, seed=5)
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "shard-0000.npy", x)
    ids = np.arange(64, dtype=np.int64)
    part = lambda sl: SplitArrays(ids[sl], np.zeros(64, np.int64)[sl], ids[sl], z[sl], e[sl])  # noqa: E731
    SplitArrays.save_npz(shards / "split.npz", {"train": part(slice(0, 48)), "val": part(slice(48, 64)),
                                                "test": part(slice(0, 0))})

    def run(*extra, epochs=1):
        cfg = config_json(**dict(TINY, epochs=epochs, learning_rate=1e-3))
        log = tmp_path / f"train{len(list(tmp_path.glob('train*.log')))}.log"
        assert main(["--shards", str(shards), "--split-npz", str(shards / "split.npz"), "--trial", "t",
                     "--trial-json", '{"ebv_input": true}', "--fold", "0", "--master-seed", "2019",
                     "--seeds", "0", "1", "--config-json", json.dumps(cfg), "--out-root", str(tmp_path / "models"),
                     "--log", str(log), *extra]) == 0
        return log.read_text()

    ck = [tmp_path / "models" / "t" / "fold0" / f"seed{s}" / "checkpoint.pt" for s in (0, 1)]
    first = run()
    assert "training 2 member(s)" in first and all(f.exists() for f in ck)
    stamp = [f.stat().st_mtime_ns for f in ck]
    again = run()
    assert again.count("already trained with these settings") == 2 and "member(s)" not in again
    assert [f.stat().st_mtime_ns for f in ck] == stamp
    ck[1].unlink()                                   # one member lost: only it is trained again
    one = run()
    assert one.count("already trained") == 1 and "training 1 member(s)" in one
    assert ck[0].stat().st_mtime_ns == stamp[0]
    assert "training 2 member(s)" in run("--force")
    assert "training 2 member(s)" in run(epochs=2)  # other settings: not the same member


def test_class_targets_are_normalised_gaussians_centred_on_the_class():
    assert class_targets(train_config(label_sigma_z=0.0)) is None  # the paper's one-hot targets
    cfg = train_config(label_sigma_z=0.01)
    t = class_targets(cfg).numpy()
    mid = (np.arange(cfg.n_bins) + 0.5) * (cfg.z_max - cfg.z_min) / cfg.n_bins + cfg.z_min
    assert t.shape == (cfg.n_bins, cfg.n_bins)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(t.argmax(axis=1), np.arange(cfg.n_bins))
    # away from the edges each row is a Gaussian of width 0.01 in z around its class
    row = t[90]
    mean = (row * mid).sum()
    assert abs(mean - mid[90]) < 1e-9 and abs(np.sqrt((row * (mid - mean) ** 2).sum()) - 0.01) < 2e-4
    # at an edge the Gaussian is cut and renormalised: the mean moves into the range
    assert (t[0] * mid).sum() > mid[0]


def test_smoothed_targets_change_the_loss_and_the_fingerprint(small, tmp_path):
    """label_sigma_z is a result setting: a member trained with it differs, and a checkpoint of the other restarts."""
    tr, zt, et, va, zv, ev = small
    one_hot = train_members(train_config(epochs=1, label_sigma_z=0.0, **TINY), (tr, zt, et), (va, zv, ev), [5], [tmp_path / "a"])[0]
    cfg = train_config(epochs=1, label_sigma_z=0.01, **TINY)
    smooth = train_members(cfg, (tr, zt, et), (va, zv, ev), [5], [tmp_path / "b"])[0]
    assert one_hot[0]["train_loss"] != smooth[0]["train_loss"]
    assert np.isfinite(smooth[0]["val_loss"])
    assert train_config(label_sigma_z=0.01).fingerprint() != train_config(label_sigma_z=0.0).fingerprint()
