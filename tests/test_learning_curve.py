"""The learning curve (photoz.learning_curve): points, shared test set, slopes, errors, figure, wording."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from photoz import bins, learning_curve as lc, metrics, wording
from photoz.tables import TrialPredictions

N_BINS = 40
EDGES = bins.edges(N_BINS, 0.0, 0.4)
SPEC = {"train": "cv_train", "test": "cv_test", "folds": "single", "members": 1, "train_size": 100}
MAIN = {"train": "cv_train", "test": "cv_test", "folds": "all", "members": 1}


def _catalog(n=300, n_folds=5, seed=0):
    rng = np.random.default_rng(seed)
    cat = pd.DataFrame({"specObjID": np.arange(n, dtype=np.int64) * 10 + 3,
                        "z": np.clip(rng.gamma(6.0, 0.02, n), 0.01, 0.38),
                        "fold": (np.arange(n) % n_folds).astype(np.int8), "rank": rng.permutation(n).astype(np.int32)})
    for f in range(n_folds):
        cat[f"val_{f}"] = (cat["fold"] != f) & (rng.random(n) < 0.1)
    return cat


def _ensemble(cat, sigma, folds, seed):
    """Gaussian PDFs around z + noise, for the catalog rows on ``folds`` (shuffled row order)."""
    rng = np.random.default_rng(seed)
    sel = cat[cat["fold"].isin(folds)].sample(frac=1.0, random_state=seed).reset_index(drop=True)
    z = sel["z"].to_numpy()
    centre = z + rng.normal(0, sigma, len(z)) * (1 + z)
    mid = bins.centres(EDGES)
    pdf = np.exp(-0.5 * ((mid[None, :] - centre[:, None]) / (1.5 * sigma)) ** 2) + 1e-6
    pdf = (pdf / pdf.sum(axis=1, keepdims=True)).astype(np.float32)
    df = pd.DataFrame({"specObjID": sel["specObjID"], "fold": sel["fold"], "z_spec": z, "z_phot": pdf @ mid,
                       "width68": 0.02})
    return df, pdf


def _knn(ens, sigma, seed, n_train):
    rng = np.random.default_rng(seed)
    z = ens["z_spec"].to_numpy()
    return pd.DataFrame({"specObjID": ens["specObjID"], "fold": ens["fold"], "z_spec": z,
                         "z_phot": z + rng.normal(0, sigma, len(z)) * (1 + z), "z_err": 0.01, "fallback": False,
                         "n_train": n_train})


@pytest.fixture()
def inputs():
    cat = _catalog()
    ens = {"small": _ensemble(cat, 0.03, [0], 1), "main": _ensemble(cat, 0.01, range(5), 2)}
    side = {t: int((cat["fold"] != 0).sum()) if t == "main" else 100 for t in ens}
    knn = {"small": _knn(ens["small"][0], 0.025, 3, side["small"]), "main": _knn(ens["main"][0], 0.02, 4, side["main"])}
    return cat, ens, knn, {"small": SPEC, "main": MAIN}


def _members(cat, ens, m=3):
    """``m`` members per trial: fold-0 PDFs around z with their own noise (specObjID, pdf), in a shuffled order."""
    out = {}
    for t, (e, _) in ens.items():
        sel = e[e["fold"] == 0]
        out[t] = []
        for k in range(m):
            sub = cat.set_index("specObjID").loc[sel["specObjID"]].reset_index().assign(fold=0)
            me, mp = _ensemble(sub, 0.03 if t == "small" else 0.01, [0], 100 + 10 * k + len(t))
            out[t].append((me["specObjID"].to_numpy(), mp))
    return out


def _curve(inputs, n_bootstrap=20, members=True):
    cat, ens, knn, trials = inputs
    preds = TrialPredictions(ens, knn, _members(cat, ens) if members else {})
    return lc.learning_curve(["small", "main"], preds, cat, trials, networks={"small": "reduced", "main": "full"},
                             bin_edges=EDGES, n_bootstrap=n_bootstrap, seed=5)


def test_points_equal_photoz_metrics_on_fold0_galaxies(inputs):
    cat, ens, knn, _ = inputs
    df = _curve(inputs)
    assert list(df.columns) == list(lc.COLUMNS)
    assert list(zip(df["trial"], df["estimator"])) == [("small", "cnn"), ("small", "knn"), ("main", "cnn"), ("main", "knn")]
    n0 = int((cat["fold"] == 0).sum())
    assert (df["n_test"] == n0).all()
    for t in ("small", "main"):
        e, pdf = ens[t]
        on0 = e["fold"].to_numpy() == 0
        zs = e["z_spec"].to_numpy()[on0]
        dz = metrics.delta_z(e["z_phot"].to_numpy()[on0], zs)
        row = df[(df["trial"] == t) & (df["estimator"] == "cnn")].iloc[0]
        assert row["sigma_mad"] == pytest.approx(metrics.sigma_mad(dz), rel=1e-12)
        assert row["bias"] == pytest.approx(metrics.bias(dz), rel=1e-12)
        assert row["eta"] == pytest.approx(metrics.eta(dz), rel=1e-12)
        assert row["crps"] == pytest.approx(np.mean(metrics.crps(pdf[on0], zs, EDGES)), rel=1e-9)
        k = knn[t][knn[t]["fold"] == 0]
        dzk = metrics.delta_z(k["z_phot"].to_numpy(), k["z_spec"].to_numpy())
        krow = df[(df["trial"] == t) & (df["estimator"] == "knn")].iloc[0]
        assert krow["sigma_mad"] == pytest.approx(metrics.sigma_mad(dzk), rel=1e-12)
        assert np.isnan(krow["crps"]) and krow["n_train"] == krow["n_train_side"]
        assert row["ratio_sigma_mad"] == pytest.approx(metrics.sigma_mad(dz) / metrics.sigma_mad(dzk), rel=1e-12)
        assert row["sigma_mad_err"] > 0 and row["ratio_sigma_mad_err"] > 0
        # the errors carry both sources: bootstrap and the members' spread, in quadrature
        assert row["n_members"] == 3 and row["sigma_mad_member_err"] > 0
        assert row["sigma_mad_err"] == pytest.approx(np.hypot(row["sigma_mad_boot_err"], row["sigma_mad_member_err"]))
        assert row["ratio_sigma_mad_err"] == pytest.approx(np.hypot(row["ratio_boot_err"], row["ratio_member_err"]))
        assert row["ratio_member_err"] == pytest.approx(row["ratio_sigma_mad"] * row["sigma_mad_member_err"]
                                                        / row["sigma_mad"])
        assert krow["sigma_mad_member_err"] == 0 and krow["sigma_mad_err"] == krow["sigma_mad_boot_err"]
    # the CNN's training size: the training side without its validation subset (as Table 2); the small
    # trial's side: the 100 galaxies of fold 0's training side with the smallest rank
    side = (cat["fold"] != 0).to_numpy()
    small = np.zeros(len(cat), bool)
    small[np.flatnonzero(side)[np.argsort(cat["rank"].to_numpy()[side])[:100]]] = True
    cnn = df[df["estimator"] == "cnn"].set_index("trial")
    assert cnn.loc["main", "n_train"] == int((side & ~cat["val_0"]).sum())
    assert cnn.loc["small", "n_train"] == int((small & ~cat["val_0"]).sum()) < 100
    assert list(cnn["n_train_side"]) == [100, int(side.sum())]
    assert list(cnn["network"]) == ["reduced", "full"]


def test_main_trial_scored_on_fold0_only(inputs):
    cat, ens, knn, trials = inputs
    before = _curve(inputs)
    e, pdf = ens["main"]
    other = e["fold"].to_numpy() != 0
    e2 = e.copy()
    e2.loc[other, "z_phot"] = 0.39  # wreck every other fold: nothing may change
    k2 = knn["main"].copy()
    k2.loc[k2["fold"] != 0, "z_phot"] = 0.0
    after = _curve((cat, {**ens, "main": (e2, pdf)}, {**knn, "main": k2}, trials))
    pd.testing.assert_frame_equal(before, after)


def test_different_test_galaxies_is_an_error(inputs):
    cat, ens, knn, trials = inputs
    e, pdf = ens["small"]
    keep = np.arange(len(e)) != 0
    with pytest.raises(ValueError, match="same galaxies"):
        _curve((cat, {**ens, "small": (e[keep].reset_index(drop=True), pdf[keep])}, knn, trials))
    k = knn["main"].copy()
    k.loc[k.index[k["fold"] == 0][0], "specObjID"] = -1
    with pytest.raises(ValueError, match="kNN of trial 'main'.*same galaxies"):
        _curve((cat, ens, {**knn, "main": k}, trials))


def test_knn_of_another_selection_is_an_error(inputs):
    cat, ens, knn, trials = inputs
    wrong = knn["small"].assign(n_train=int((cat["fold"] != 0).sum()))  # trained on the whole fold: no train_size
    with pytest.raises(ValueError, match=r"results/knn/small.parquet: the kNN of trial 'small' trained on \d+"):
        _curve((cat, ens, {**knn, "small": wrong}, trials))


def test_missing_trial_names_the_file(inputs, tmp_path):
    cat, ens, knn, trials = inputs
    with pytest.raises(ValueError, match=r"'main' \(results/knn/main.parquet\)"):
        _curve((cat, ens, {"small": knn["small"]}, trials))
    # the command: a declared file that does not exist is named
    cat.to_parquet(tmp_path / "catalog.parquet")
    e, pdf = ens["small"]
    e.assign(pdf=list(pdf)).to_parquet(tmp_path / "small.parquet")
    knn["small"].to_parquet(tmp_path / "knn_small.parquet")
    cfg = ('{"learning_curve": ["small", "main"], "trials": {"small": {"train": "cv_train", "test": "cv_test"},'
           ' "main": {"train": "cv_train", "test": "cv_test"}}, "bins": {"n": 40, "z_min": 0.0, "z_max": 0.4},'
           ' "bootstrap": 5, "seed": 1}')
    args = ["--config-json", cfg, "--catalog", str(tmp_path / "catalog.parquet"),
            "--ensemble", f"small={tmp_path / 'small.parquet'}", "--ensemble", f"main={tmp_path / 'nope.parquet'}",
            "--knn", f"small={tmp_path / 'knn_small.parquet'}", "--knn", f"main={tmp_path / 'knn_small.parquet'}",
            "--csv", str(tmp_path / "lc.csv"), "--tex", str(tmp_path / "lc.tex")]
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet.*'main'"):
        lc.main(args)
    assert not (tmp_path / "lc.csv").exists()


def test_command_writes_csv_and_table(inputs, tmp_path):
    cat, ens, knn, _ = inputs
    cat.to_parquet(tmp_path / "catalog.parquet")
    args = []
    for t in ("small", "main"):
        e, pdf = ens[t]
        e.assign(pdf=list(pdf)).to_parquet(tmp_path / f"{t}.parquet")
        knn[t].to_parquet(tmp_path / f"knn_{t}.parquet")
        args += ["--ensemble", f"{t}={tmp_path / f'{t}.parquet'}", "--knn", f"{t}={tmp_path / f'knn_{t}.parquet'}"]
    for t, mem in _members(cat, ens).items():
        for k, (ids, pdf) in enumerate(mem):
            np.savez(tmp_path / f"{t}_seed{k}.npz", specObjID=ids, pdf=pdf)
            args += ["--member", f"{t}={tmp_path / f'{t}_seed{k}.npz'}"]
    cfg = ('{"learning_curve": ["small", "main"], "trials": {"small": {"train": "cv_train", "test": "cv_test",'
           ' "folds": "single", "train_size": 100}, "main": {"train": "cv_train", "test": "cv_test", "folds": "all"}},'
           ' "networks": {"small": "reduced", "main": "full"},'
           ' "bins": {"n": 40, "z_min": 0.0, "z_max": 0.4}, "bootstrap": 20, "seed": 5}')
    assert lc.main(["--config-json", cfg, "--catalog", str(tmp_path / "catalog.parquet"), *args,
                    "--csv", str(tmp_path / "lc.csv"), "--tex", str(tmp_path / "lc.tex")]) == 0
    got = lc.read_curve(tmp_path / "lc.csv")
    want = _curve(inputs)
    np.testing.assert_allclose(got["sigma_mad"], want["sigma_mad"], rtol=1e-6)
    np.testing.assert_allclose(got["sigma_mad_member_err"], want["sigma_mad_member_err"], rtol=1e-5)
    np.testing.assert_allclose(got["crps"], want["crps"], rtol=1e-5)
    tex = (tmp_path / "lc.tex").read_text()
    assert tex.startswith(r"\begin{tabular}") and "small (reduced)" in tex and "slope" in tex


def test_slope_of_known_power_laws():
    n = np.array([500, 1000, 2000, 4000, 8000])
    for a in (-0.5, -0.12, 0.0, 0.2):
        s, e, k, chi2, dof = lc.loglog_slope(n, 0.02 * n ** a)
        assert s == pytest.approx(a, abs=1e-12) and np.isnan(e) and k == 5 and dof == 3
    # error propagated from relative errors c: sd(log10 y) = c / ln 10 on every point (no misfit: chi2 = 0)
    c = 0.05
    s, e, _, chi2, dof = lc.loglog_slope(n, 0.02 * n ** -0.3, 0.02 * n ** -0.3 * c)
    dx = np.log10(n) - np.log10(n).mean()
    assert e == pytest.approx(c / np.log(10) / np.sqrt(np.sum(dx ** 2)), rel=1e-12) and chi2 == pytest.approx(0, abs=1e-12)
    assert np.isnan(lc.loglog_slope([1000], [0.01])[0])
    assert lc.loglog_slope([1000, 2000, np.nan], [0.01, 0.008, 0.007])[2] == 2


def test_slope_error_includes_misfit():
    """Points off a straight line by much more than their errors: the error grows by sqrt(chi2/dof), and
    matches the scatter of slopes fitted to curves redrawn with the same misfit (a Monte Carlo check)."""
    n = np.array([500, 1000, 2000, 4000, 8000, 16000])
    c = 0.01  # 1% errors on each point
    y = 0.02 * n ** -0.25 * (1 + np.array([0.08, -0.06, 0.05, -0.07, 0.06, -0.04]))  # ~6% wiggles: misfit
    s, e, k, chi2, dof = lc.loglog_slope(n, y, c * y)
    _, e_points, *_ = lc.loglog_slope(n, 0.02 * n ** -0.25, c * 0.02 * n ** -0.25)
    assert dof == 4 and chi2 / dof > 10
    assert e == pytest.approx(e_points * np.sqrt(chi2 / dof), rel=1e-9) and e > 3 * e_points
    # Monte Carlo: lines with 6% scatter about them; the propagated error alone (1%) would be far too small
    rng = np.random.default_rng(0)
    slopes, errs = [], []
    for _ in range(400):
        yy = 0.02 * n ** -0.25 * np.exp(rng.normal(0, 0.06, n.size))
        ss, ee, *_ = lc.loglog_slope(n, yy, c * yy)
        slopes.append(ss)
        errs.append(ee)
    assert np.median(errs) == pytest.approx(np.std(slopes), rel=0.3)
    # two points: no degree of freedom to measure misfit, so no error
    s2, e2, k2, _, dof2 = lc.loglog_slope(n[:2], y[:2], c * y[:2])
    assert k2 == 2 and dof2 == 0 and np.isnan(e2) and np.isfinite(s2)


def test_member_spread():
    z = np.linspace(0.05, 0.3, 2000)
    rng = np.random.default_rng(1)
    members = [z + rng.normal(0, sig, z.size) * (1 + z) for sig in (0.010, 0.012, 0.014)]
    err, vals = lc.member_spread(members, z)
    assert vals == pytest.approx([0.010, 0.012, 0.014], rel=0.1)
    assert err == pytest.approx(np.std(vals, ddof=1) / np.sqrt(3))
    assert np.isnan(lc.member_spread(members[:1], z)[0])


def test_no_members_gives_no_cnn_error(inputs):
    """Without the members' predictions nothing measures their spread: the CNN's total errors are NaN."""
    df = _curve(inputs, members=False)
    cnn = df[df["estimator"] == "cnn"]
    assert cnn["sigma_mad_err"].isna().all() and cnn["ratio_sigma_mad_err"].isna().all()
    assert (cnn["sigma_mad_boot_err"] > 0).all() and (cnn["n_members"] == 0).all()


def test_slopes_are_per_estimator(inputs):
    df = pd.DataFrame({"trial": ["a", "a", "b", "b", "c", "c"], "estimator": ["cnn", "knn"] * 3,
                       "n_train": [100, 100, 400, 400, 1600, 1600],
                       "sigma_mad": [0.04, 0.05, 0.02, 0.05 * 4 ** -0.1, 0.01, 0.05 * 16 ** -0.1],
                       "sigma_mad_err": [0.001] * 6})
    out = lc.add_summaries(df)
    assert out.loc[out["estimator"] == "cnn", "slope_sigma_mad"].tolist() == pytest.approx([-0.5] * 3)
    assert out.loc[out["estimator"] == "knn", "slope_sigma_mad"].tolist() == pytest.approx([-0.1] * 3)


def test_ratio_bootstrap_is_paired():
    rng = np.random.default_rng(0)
    dz = rng.normal(0, 0.01, 2000)
    r, e = lc.ratio_bootstrap(dz, dz, 50, seed=1)
    assert r == 1.0 and e == 0.0  # the same galaxies for both: no spread at all
    r, e = lc.ratio_bootstrap(dz, 2 * dz + rng.normal(0, 0.001, dz.size), 50, seed=1)
    assert r == pytest.approx(0.5, rel=0.05) and 0 < e < 0.05
    with pytest.raises(ValueError, match="paired"):
        lc.ratio_bootstrap(dz, dz[:10], 50, seed=1)


def test_figure_renders_from_small_csv(tmp_path):
    from photoz.figures import common, fig15_learning_curve as fig
    from synthetic_results import _learning_curve

    (tmp_path / "results" / "tables").mkdir(parents=True)
    _learning_curve(tmp_path / "results", np.random.default_rng(1))
    out = tmp_path / "fig15.pdf"
    assert common.run(fig, ["--learning-curve", str(tmp_path / "results" / "learning_curve.csv"), "--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pts, b16 = fig.published_points()
    assert [p["n_train"] for p in pts] == [10100, 99001, 250000, 393219]
    assert (b16["sigma_mad"], b16["eta"], b16["n_train"]) == (0.01350, 1.34, 393219)


def test_figure_names_a_bad_file(tmp_path):
    from photoz.figures import common, fig15_learning_curve as fig

    pd.DataFrame({"trial": ["a"], "estimator": ["cnn"]}).to_csv(tmp_path / "lc.csv", index=False)
    with pytest.raises(common.FigureInputError, match=r"lc\.csv.*n_train"):
        common.run(fig, ["--learning-curve", str(tmp_path / "lc.csv"), "--out", str(tmp_path / "x.pdf")])


def test_wording_picks_every_outcome():
    assert "is lower than the kNN's" in wording.learning_curve_end(0.80, 0.02, "4\\,000")
    assert "is higher than the kNN's" in wording.learning_curve_end(1.20, 0.02, "4\\,000")
    assert "is as low as the kNN's within 5" in wording.learning_curve_end(1.01, 0.01, "500", "smallest")
    # wide errors (or none): cannot tell, whatever the ratio
    for r, e in ((1.03, 0.02), (0.80, 0.2), (1.2, 0.3), (0.9, None), (0.9, float("nan"))):
        s = wording.learning_curve_end(r, e, "500", "smallest")
        assert "we cannot tell whether" in s and "is lower than" not in s.replace("whether the CNN's $\\smad$ is lower", "")
    assert "falls faster with the training size than" in wording.learning_curve_slopes(-0.30, 0.02, -0.10, 0.02)
    assert "falls more slowly with the training size than" in wording.learning_curve_slopes(-0.10, 0.02, -0.30, 0.02)
    assert "falls as fast (within 0.05) with the training size as" in wording.learning_curve_slopes(-0.10, 0.01, -0.11, 0.01)
    # the same slopes with errors ten times larger: cannot tell
    assert "we cannot tell whether" in wording.learning_curve_slopes(-0.10, 0.05, -0.12, 0.05)
    assert "we cannot tell whether" in wording.learning_curve_slopes(-0.30, 0.2, -0.10, 0.2)
    assert "we cannot tell whether" in wording.learning_curve_slopes(-0.30, float("nan"), -0.10, 0.02)
    s = wording.learning_curve_slopes(0.05, 0.01, -0.2, 0.01)
    assert "rises" in s and "falls faster" not in s
    assert "not compared" in wording.learning_curve_slopes(float("nan"), None, -0.2, 0.01)


def test_paper_macros_follow_the_curve(tmp_path):
    from synthetic_results import _learning_curve

    (tmp_path / "tables").mkdir()
    _learning_curve(tmp_path, np.random.default_rng(2))
    m = lc.macros(tmp_path / "learning_curve.csv")
    assert m["LcNPoints"] == "4" and m["LcNTrainMax"] == "3\\,800"
    assert "falls faster" in m["LcSlopeSentence"] and "is lower than" in m["LcLargestSentence"]
    # the other outcome, from the numbers alone
    df = pd.read_csv(tmp_path / "learning_curve.csv")
    cnn = df["estimator"] == "cnn"
    df.loc[cnn, "slope_sigma_mad"], df.loc[~cnn, "slope_sigma_mad"] = -0.05, -0.30
    df["ratio_sigma_mad"] = 1.5
    df.to_csv(tmp_path / "learning_curve.csv", index=False)
    m = lc.macros(tmp_path / "learning_curve.csv")
    assert "falls more slowly" in m["LcSlopeSentence"] and "is higher than" in m["LcLargestSentence"]
    assert lc.macros(None)["LcNPoints"] == "0"
    lc.add_summaries(df[df["trial"] == "main"]).to_csv(tmp_path / "one.csv", index=False)  # one point: one end
    m = lc.macros(tmp_path / "one.csv")
    assert m["LcNPoints"] == "1" and m["LcSmallestSentence"] == "" and "not compared" in m["LcSlopeSentence"]
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        lc.macros(tmp_path / "nope.csv")


def _job_counts(root, *args):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--quiet", "rules", *args],
                          capture_output=True, text=True, cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_rule_scheduled_only_with_learning_curve_trials(root, default_config):
    from photoz import trials

    assert not trials.learning_curve(default_config)  # the quick default draws none
    without = _job_counts(root)
    assert "learning_curve" not in without and "paper" in without
    with_lc = _job_counts(root, "--configfile", str(root / "config" / "mock-science.yaml"))
    assert with_lc["learning_curve"] == 1
    assert with_lc["knn"] >= 6  # the curve's six points, main among them
    # no learning curve: its figure is not drawn (the paper leaves it out)
    from photoz.figures import FIGURES

    assert without["figure"] == len(FIGURES) - 1 and with_lc["figure"] == len(FIGURES)
