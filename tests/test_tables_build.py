"""photoz.tables on synthetic files of exactly the contract's shape (docs/dataflow.md, Sect. 3-5)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import norm

from photoz import bins, metrics, published, tables
from photoz.config import fill_section

N = 2500
EDGES = bins.edges(180, 0.0, 0.4)  # the default's bins (config bins)
MID = bins.centres(EDGES)
REGIONS = {"suspect_zone": {"ra_min": 150.25, "ra_max": 150.55, "dec_min": 29.6, "dec_max": 30.4},
           "stripe82": {"ra_min": -60.0, "ra_max": 60.0, "dec_min": -1.26, "dec_max": 1.26}}
TRIALS = {
    "main": {"train": "cv_train", "test": "cv_test", "folds": "all", "members": 2},
    "s82only": {"train": "s82_train", "test": "s82_test", "folds": "single", "members": 1},
}
#: what the table2 command's --config-json holds besides the rows
CFG = {"regions": REGIONS, "trials": TRIALS, "n_folds": 5, "bootstrap": 30, "seed": 0}
ROWS = fill_section("table2", [
    {"label": "80% training, full test sample", "trial": "main", "subset": "all", "published": "full"},
    {"label": "B16 on the same galaxies", "trial": "main", "subset": "all", "estimator": "b16", "published": "b16"},
    {"label": "kNN on the same galaxies", "trial": "main", "subset": "all", "estimator": "knn"},
    {"label": "Suspect zone removed", "trial": "main", "subset": "no_suspect", "published": "no_suspect"},
    {"label": "Widest 20% of PDFs removed", "trial": "main", "subset": "all", "remove_widest": 0.2, "published": "widest20"},
    {"label": "Stripe 82, widest 20% removed", "trial": "main", "subset": "s82", "remove_widest": 0.2, "published": "s82_widest20"},
    {"label": "Trained on Stripe 82, tested outside", "trial": "s82only", "subset": "no_s82", "published": "s82only_out"},
])


def make_catalog(rng):
    n = N
    s82 = rng.random(n) < 0.3
    suspect = (~s82) & (rng.random(n) < 0.1)
    ra = np.where(s82, rng.uniform(-20, 20, n) % 360, np.where(suspect, rng.uniform(150.3, 150.5, n), rng.uniform(150.6, 152, n)))
    dec = np.where(s82, rng.uniform(-1, 1, n), np.where(suspect, rng.uniform(29.7, 30.3, n), rng.uniform(29, 31, n)))
    z = rng.uniform(0.02, 0.35, n)
    cat = pd.DataFrame({
        "specObjID": rng.permutation(np.arange(n, dtype=np.int64) * 13 + 10**15),
        "ra": ra, "dec": dec, "z": z, "stripe82": s82,
        "zphot": z + rng.normal(0, 0.015, n) * (1 + z),
        "fold": (np.arange(n) % 5).astype(np.int8),
        "sel_s82": np.where(s82, 1, 2).astype(np.int8),
    })
    for f in range(5):
        cat[f"val_{f}"] = (cat["fold"] != f) & (rng.random(n) < 0.05)
    for b, off in zip("ugriz", (2.0, 1.0, 0.0, -0.4, -0.7)):
        cat[f"dered_petro_{b}"] = 16 + off + rng.normal(0, 0.1, n)
    cat.loc[cat["specObjID"] % 2 == 0, "zphot"] = -9999.0  # rows without B16 are left out of its row
    cat.loc[cat.index[:3], "zphot"] = 0.2  # and keep some non-missing ones anyway
    return cat


def make_ensemble(cat, mask, rng, fixed_size=False, folds=None):
    sub = cat[mask].reset_index(drop=True)
    n = len(sub)
    sig = rng.uniform(0.004, 0.03, n)
    mu = np.clip(sub["z"] + rng.normal(0, 1, n) * sig, 0.03, 0.37)
    pdf = np.diff(norm.cdf((EDGES[None, :] - mu.to_numpy()[:, None]) / sig[:, None]), axis=1)
    pdf = (pdf / pdf.sum(1, keepdims=True)).astype(np.float32)
    z_spec = sub["z"].to_numpy()
    flat = pa.array(pdf.ravel(), pa.float32())
    pdf_col = pa.FixedSizeListArray.from_arrays(flat, 180) if fixed_size else pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * 180), flat)
    pit = metrics.pit(pdf, z_spec, EDGES)
    table = pa.table({
        "specObjID": pa.array(sub["specObjID"].to_numpy(), pa.int64()),
        "fold": pa.array(sub["fold"].to_numpy() if folds is None else np.full(n, folds), pa.int8()),
        "z_spec": z_spec, "z_phot": pdf.astype(np.float64) @ MID,
        "width68": metrics.width(pdf, EDGES), "pit": pit,
        "crps": metrics.crps(pdf, z_spec, EDGES), "pdf": pdf_col,
        "pit_members": pa.array([[float(p), float(p)] for p in pit], pa.list_(pa.float32())),
    })
    return table


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(11)
    cat = make_catalog(rng)
    (d / "results/shards").mkdir(parents=True)
    (d / "results/ensemble").mkdir(parents=True)
    (d / "results/knn").mkdir(parents=True)
    cat.to_parquet(d / "results/shards/catalog.parquet")
    pq.write_table(make_ensemble(cat, np.ones(N, bool), rng), d / "results/ensemble/main.parquet")
    pq.write_table(make_ensemble(cat, (cat["sel_s82"] == 2).to_numpy(), rng, fixed_size=True, folds=0),
                   d / "results/ensemble/s82only.parquet")
    knn = pd.DataFrame({"specObjID": cat["specObjID"], "fold": cat["fold"], "z_spec": cat["z"],
                        "z_phot": cat["z"] + rng.normal(0, 0.01, N)})
    knn.sample(frac=1, random_state=1).to_parquet(d / "results/knn/main.parquet")  # any order
    return d


def cfg_json():
    return json.dumps({"mode": "mock", "table2": ROWS, "regions": REGIONS, "trials": TRIALS, "n_folds": 5,
                       "bins": {"n": 180, "z_min": 0.0, "z_max": 0.4}, "bootstrap": 30, "seed": 5})


@pytest.fixture(scope="module")
def table2_csv(world):
    d = world
    rc = tables.main(["table2", "--config-json", cfg_json(), "--catalog", str(d / "results/shards/catalog.parquet"),
                      "--ensemble", f"main={d}/results/ensemble/main.parquet",
                      "--ensemble", f"s82only={d}/results/ensemble/s82only.parquet",
                      "--knn", f"main={d}/results/knn/main.parquet",
                      "--csv", str(d / "results/table2.csv"), "--tex", str(d / "results/tables/table2.tex"),
                      "--log", str(d / "logs/table2.log")])
    assert rc == 0
    return pd.read_csv(d / "results/table2.csv")


def test_in_box_wraps_ra():
    box = REGIONS["stripe82"]
    assert list(tables.in_box([350.0, 10.0, 200.0, 10.0], [0.0, 0.0, 0.0, 2.0], box)) == [True, True, False, False]


def test_table2_recomputed_independently_from_the_predictions_file(world, table2_csv):
    """Row 'Stripe 82, widest 20% removed' from the raw files with plain numpy."""
    d = world
    ens = pd.read_parquet(d / "results/ensemble/main.parquet")
    cat = pd.read_parquet(d / "results/shards/catalog.parquet").set_index("specObjID")
    s82 = cat.loc[ens["specObjID"], "stripe82"].to_numpy()
    w = ens["width68"].to_numpy()[s82]
    keep = ens[s82][w <= np.quantile(w, 0.8)]
    dz = (keep["z_phot"] - keep["z_spec"]) / (1 + keep["z_spec"])
    # CRPS by brute-force integration of the piecewise-linear CDF on a fine grid
    zf = np.linspace(0, 0.4, 40001)
    crps = []
    for pdf, zs in zip(keep["pdf"], keep["z_spec"]):
        cdf = np.interp(zf, EDGES, np.concatenate([[0.0], np.cumsum(pdf)]) / np.sum(pdf))
        crps.append(np.trapezoid((cdf - (zf >= zs)) ** 2, zf))
    row = table2_csv[table2_csv["label"] == "Stripe 82, widest 20% removed"].iloc[0]
    # the pooled values (all folds at once) stay as pooled_* columns
    assert row["pooled_n_test"] == len(keep)
    assert row["pooled_bias"] == pytest.approx(dz.mean(), rel=1e-6)
    assert row["pooled_sigma_mad"] == pytest.approx(1.4826 * np.median(np.abs(dz - np.median(dz))), rel=1e-6)
    assert row["pooled_eta"] == pytest.approx(100 * np.mean(np.abs(dz) > 0.05), rel=1e-6)
    assert row["pooled_crps"] == pytest.approx(np.mean(crps), rel=1e-4)
    # the row itself, as the paper: each fold on its own (its own widest-20% cut), then mean ± std over folds
    per_fold = []
    for f in range(5):
        sub = ens[s82 & (ens["fold"].to_numpy() == f)]
        wf = sub["width68"].to_numpy()
        kf = sub[wf <= np.quantile(wf, 0.8)]
        dzf = (kf["z_phot"] - kf["z_spec"]) / (1 + kf["z_spec"])
        per_fold.append((len(kf), dzf.mean(), 1.4826 * np.median(np.abs(dzf - np.median(dzf))),
                         100 * np.mean(np.abs(dzf) > 0.05)))
    n, b, smad, eta = map(np.array, zip(*per_fold))
    assert row["n_folds"] == 5 and row["errors"] == "folds"
    assert row["n_test"] == pytest.approx(n.mean())
    assert row["bias"] == pytest.approx(b.mean(), rel=1e-6) and row["bias_err"] == pytest.approx(b.std(ddof=1), rel=1e-6)
    assert row["sigma_mad"] == pytest.approx(smad.mean(), rel=1e-6)
    assert row["sigma_mad_err"] == pytest.approx(smad.std(ddof=1), rel=1e-6)
    assert row["eta"] == pytest.approx(eta.mean(), rel=1e-6) and row["eta_err"] == pytest.approx(eta.std(ddof=1), rel=1e-6)
    # the published values stand beside ours
    assert row["pub_sigma_mad"] == 0.00635 and row["pub_n_test"] == 3131
    # training size: main trial, mean over folds of the training side without validation
    n_train = np.mean([((cat["fold"] != f) & ~cat[f"val_{f}"]).sum() for f in range(5)])
    assert row["n_train"] == pytest.approx(n_train)


def test_table2_rows_and_estimators(world, table2_csv):
    t = table2_csv.set_index("label")
    cat = pd.read_parquet(world / "results/shards/catalog.parquet")
    # a mock run (no mode given: mock) names the Photoz table B16-like (mock) in every label
    assert list(table2_csv["label"]) == [r["label"].replace("B16", "B16-like (mock)") for r in ROWS]
    full = t.loc["80% training, full test sample"]
    # per-fold N (the mean over the five folds) beside the published one fold's N; all folds pooled as extra columns
    assert full["n_test"] == N / 5 and full["pooled_n_test"] == N and full["pub_n_test"] == 103306
    assert full["pub_bias"] == 0.0001 and full["pub_crps"] == 0.00674
    # B16 on the same galaxies, those without a Photoz redshift left out
    b16 = t.loc["B16-like (mock) on the same galaxies"]
    ok = cat["zphot"] > -1
    dz = (cat["zphot"][ok] - cat["z"][ok]) / (1 + cat["z"][ok])
    assert b16["pooled_n_test"] == ok.sum() and b16["pooled_bias"] == pytest.approx(dz.mean())
    assert b16["n_test"] == pytest.approx(ok.sum() / 5)
    assert np.isnan(b16["crps"]) and np.isnan(b16["n_train"]) and b16["pub_sigma_mad"] == 0.0135
    # kNN aligned by specObjID (the file was shuffled), no published value
    knn = pd.read_parquet(world / "results/knn/main.parquet")
    dz = (knn["z_phot"] - knn["z_spec"]) / (1 + knn["z_spec"])
    kr = t.loc["kNN on the same galaxies"]
    assert kr["pooled_sigma_mad"] == pytest.approx(metrics.sigma_mad(dz)) and np.isnan(kr["pub_bias"])
    assert kr["n_train"] == pytest.approx(N * 4 / 5)  # whole training side
    # the suspect zone box removes exactly the galaxies inside it
    inside = tables.in_box(cat["ra"], cat["dec"], REGIONS["suspect_zone"])
    assert t.loc["Suspect zone removed", "pooled_n_test"] == N - inside.sum() > 0 and inside.sum() > 0
    # widest 20% removed: about 80% kept, narrower sample, better sigma_mad
    w20 = t.loc["Widest 20% of PDFs removed"]
    assert 0.79 * N <= w20["pooled_n_test"] <= 0.81 * N and w20["sigma_mad"] < full["sigma_mad"]
    assert 0.79 * N / 5 <= w20["n_test"] <= 0.81 * N / 5
    assert w20["crps"] < full["crps"] and w20["width_cut"] > 0
    # one-split trial tested outside Stripe 82
    out = t.loc["Trained on Stripe 82, tested outside"]
    assert out["n_test"] == (~cat["stripe82"]).sum() and out["n_train"] == pytest.approx((cat["stripe82"] & ~cat["val_0"]).sum())
    assert (table2_csv["bias_err"] > 0).all()


def test_latex_fragment(world, table2_csv):
    tex = (world / "results/tables/table2.tex").read_text()
    assert tex.startswith(r"\begin{tabular}") and tex.rstrip().endswith(r"\end{tabular}")
    assert r"80\% training" in tex and r"\textit{published}" in tex and "0.00635" in tex
    # header, rows, published rows, and the note on fold means
    assert tex.count(r"\\") == 1 + len(ROWS) + sum(1 for r in ROWS if "published" in r) + 1
    assert "mean of the per-fold values" in tex
    assert "B16-like (mock) on the same galaxies" in tex and "B16 on the same" not in tex


def test_table2_errors_name_the_file(world):
    d = world
    rows = [{"label": "kNN", "trial": "main", "subset": "all", "estimator": "knn"}]
    ens = tables.read_ensemble(d / "results/ensemble/main.parquet")
    cat = pd.read_parquet(d / "results/shards/catalog.parquet")
    knn = pd.read_parquet(d / "results/knn/main.parquet").iloc[5:]
    with pytest.raises(ValueError, match=r"knn/main.parquet: 5 test galaxies missing"):
        tables.table2(rows, tables.TrialPredictions({"main": ens}, {"main": knn},
                                                    knn_names={"main": "results/knn/main.parquet"}),
                      cat, dict(CFG, bootstrap=0), EDGES)
    bad = d / "bad.parquet"
    pq.write_table(pq.read_table(d / "results/ensemble/main.parquet").drop_columns(["width68"]), bad)
    with pytest.raises(ValueError, match=r"bad.parquet: missing columns \['width68'\]"):
        tables.read_ensemble(bad)


def test_table1(world):
    d = world
    rc = tables.main(["table1", "--ensemble", str(d / "results/ensemble/main.parquet"), "--bootstrap", "20",
                      "--seed", "0", "--csv", str(d / "results/table1.csv"), "--tex", str(d / "results/tables/table1.tex")])
    assert rc == 0
    t = pd.read_csv(d / "results/table1.csv", dtype={"fold": str})
    assert list(t["fold"]) == ["1", "2", "3", "4", "5", "mean", "std"]
    ens = pd.read_parquet(d / "results/ensemble/main.parquet", columns=["fold", "z_spec", "z_phot"])
    per = [metrics.point_metrics(g["z_phot"], g["z_spec"]) for _, g in ens.groupby("fold")]
    np.testing.assert_allclose(t["sigma_mad"][:5], [p["sigma_mad"] for p in per], rtol=1e-6)
    assert t["bias"][5] == pytest.approx(np.mean([p["bias"] for p in per]), rel=1e-6)
    assert t["n_test"][5] == pytest.approx(np.mean([p["n"] for p in per]))  # one fold's N, as the paper's
    assert t["eta"][6] == pytest.approx(np.std([p["eta"] for p in per], ddof=1), rel=1e-6, abs=1e-9)
    pub_folds, pub_mean = published.table1()
    assert list(t["pub_sigma_mad"][:5]) == [p["sigma_mad"] for p in pub_folds]
    assert t["pub_eta"][5] == pub_mean["eta"] == 0.31
    tex = (d / "results/tables/table1.tex").read_text()
    assert "mean" in tex and "(0.00912)" in tex


def test_tableA1_totals(tmp_path):
    pytest.importorskip("torch")
    rc = tables.main(["tableA1", "--network-json", '{"width": 1.0, "dense": 1096}', "--n-bins", "180",
                      "--csv", str(tmp_path / "a1.csv"), "--tex", str(tmp_path / "a1.tex")])
    assert rc == 0
    t = pd.read_csv(tmp_path / "a1.csv")
    total = t[t["stage"] == "total"].iloc[0]
    assert total["params"] == 27_596_372 == total["published_params"]
    assert t[t["stage"] == "total (paper text)"]["published_params"].iloc[0] == 27_391_464
    # the stage rows agree with the published code's counts
    stages = t.dropna(subset=["published_params"])
    stages = stages[~stages["stage"].str.startswith("total")]
    assert len(stages) == 12 and (stages["params"] == stages["published_params"]).all()
    assert r"27\,391\,464" in (tmp_path / "a1.tex").read_text()


def test_published_keys_cover_the_config(default_config):
    for row in default_config["table2"]:
        if row.get("published"):
            assert row["published"] in published.TABLE2_KEYS
    with pytest.raises(KeyError, match="known keys"):
        published.table2_row("nope")


def _dry_run(tmp_path, root):
    res = subprocess.run([sys.executable, "-m", "snakemake", "results/table2.csv", "-n", "-s", str(root / "Snakefile"),
                          "--directory", str(tmp_path), "--rerun-triggers", "mtime"],
                         capture_output=True, text=True, cwd=root, timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jobs = {}
    if "Job stats:" in out:
        for line in out[out.index("Job stats:"):].splitlines()[3:]:
            parts = line.split()
            if len(parts) != 2 or parts[0] == "total":
                break
            jobs[parts[0]] = int(parts[1])
    return jobs, out


def _table2_inputs(tmp_path, root, config):
    """Placeholder files at Table 2's input paths (a dry run only checks existence)."""
    trials = sorted({r["trial"] for r in config["table2"]})
    knn_trials = sorted({r["trial"] for r in config["table2"] if r.get("estimator") == "knn"})
    for p in (["results/shards/catalog.parquet"] + [f"results/ensemble/{t}.parquet" for t in trials]
              + [f"results/knn/{t}.parquet" for t in knn_trials] + ["results/zone/zone.json"]):
        (tmp_path / p).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / p).write_text("x")
    (tmp_path / "config.yaml").write_text((root / "config.yaml").read_text())
    return knn_trials


def test_snakemake_table2_needs_only_its_inputs(tmp_path, root, default_config):
    """Dry run from a directory holding only Table 2's inputs: one job, the table2 rule."""
    _table2_inputs(tmp_path, root, default_config)
    jobs, out = _dry_run(tmp_path, root)
    assert jobs == {"table2": 1}, out


def test_snakemake_table2_runs_knn_only_for_knn_trials(tmp_path, root, default_config):
    knn_trials = _table2_inputs(tmp_path, root, default_config)
    assert knn_trials == ["main"]
    (tmp_path / "results/knn/main.parquet").unlink()
    jobs, out = _dry_run(tmp_path, root)
    assert jobs == {"knn": 1, "table2": 1}, out
    assert "results/knn/main.parquet" in out and "tableA1" not in out


def test_empty_subset_gives_an_empty_row(world):
    d = world
    ens = tables.read_ensemble(d / "results/ensemble/s82only.parquet")
    cat = pd.read_parquet(d / "results/shards/catalog.parquet")
    rows = fill_section("table2", [{"label": "inside", "trial": "s82only", "subset": "s82", "published": "s82only_in"}])
    t = tables.table2(rows, tables.TrialPredictions({"s82only": ens}), cat, dict(CFG, bootstrap=5), EDGES)
    assert t["n_test"].iloc[0] == 0 and np.isnan(t["sigma_mad"].iloc[0]) and t["pub_n_test"].iloc[0] == 3942
    assert "--" in tables.latex_table2(t)
