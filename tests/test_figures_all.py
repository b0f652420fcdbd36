"""Every figure script runs on small synthetic result files and writes a PDF and a PNG."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pandas as pd
import pytest

from photoz.figures import FIGURES, common, declared_config, figure_inputs
from synthetic_results import write_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("fig"), n=600, n_images=16)


def _args(name, res, cfg):
    """The figure rule's command line: each input, and only the config sections the figure declares."""
    args = ["--config-json", json.dumps({s: cfg[s] for s in declared_config(name)})]
    for key, path in figure_inputs(name, cfg).items():
        args += [f"--{key.replace('_', '-')}", str(res.parent / path)]
    return args


@pytest.mark.parametrize("name", [n for n in FIGURES if n != "fig04_architecture"])
def test_figure_writes_pdf_and_png(name, results, default_config):
    mod = importlib.import_module(FIGURES[name])
    out = results / "figures" / f"{name}.pdf"
    assert common.run(mod, _args(name, results, default_config) + ["--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_column_names_file(results, tmp_path):
    bad = tmp_path / "ens.parquet"
    pd.read_parquet(results / "ensemble" / "main.parquet").drop(columns=["z_phot"]).to_parquet(bad)
    mod = importlib.import_module(FIGURES["fig06_dz"])
    with pytest.raises(common.FigureInputError, match="ens.parquet.*z_phot"):
        common.run(mod, ["--ensemble", str(bad), "--out", str(tmp_path / "x.pdf")])
    assert not (tmp_path / "x.pdf").exists()


def test_scores_and_binning():
    dz = np.array([0.0, 0.01, -0.01, 0.1])
    s = common.scores(dz)
    assert s["eta"] == pytest.approx(25.0)
    assert s["bias"] == pytest.approx(0.025)
    t = common.binned_scores(np.array([0.1, 0.2, 0.3, 0.4]), dz, np.array([0.0, 0.25, 0.5]), min_count=2)
    assert list(t["n"]) == [2, 2]
    assert t["bias"].iloc[1] == pytest.approx(0.045)


def test_in_box_wraps_ra():
    box = {"ra_min": -60.0, "ra_max": 60.0, "dec_min": -1.26, "dec_max": 1.26}
    assert list(common.in_box([350.0, 10.0, 180.0, 10.0], [0.0, 0.0, 0.0, 2.0], box)) == [True, True, False, False]


def test_centred_mean_pdf_peaks_at_zero():
    from photoz.figures.fig13_mean_pdfs import centred_mean_pdf

    pdfs = np.zeros((2, 180))
    pdfs[0, 50] = 1
    pdfs[1, 100] = 1
    z = (np.array([50, 100]) + 0.5) * 0.4 / 180
    m = centred_mean_pdf(pdfs, z, 180, 0.0, 0.4, half=5)
    assert m.argmax() == 5 and m.sum() == pytest.approx(1.0)


def test_architecture_counts_published_params(default_config):
    from photoz.figures.fig04_architecture import network_rows

    rows, total = network_rows(default_config, "full")
    assert total == 27_596_372
    assert [r["stage"].split(" ")[0] for r in rows][:3] == ["C1", "P1", "I0"]


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def _legend_labels(fig):
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


@pytest.mark.parametrize("mode, name", [("mock", "B16-like (mock)"), ("sdss", "B16")])
def test_fig07_writes_the_scores_of_what_it_plots_and_names_b16_by_mode(results, default_config, mode, name):
    """The numbers Fig. 7 writes beside each panel are the scores of the plotted galaxies; B16's name follows the mode."""
    from photoz import metrics

    mod = importlib.import_module(FIGURES["fig07_zphot_zspec"])
    cfg = {**default_config, "mode": mode}
    inputs = {k: str(results.parent / v) for k, v in figure_inputs("fig07_zphot_zspec", cfg).items()}
    fig = mod.make(inputs, cfg, common.silence("t"))
    texts = _texts(fig)
    df = common.test_sample(inputs["ensemble"], inputs["catalog"], ["zphot"])
    for text, zp in zip(texts, (df["z_phot"], df["zphot"])):
        dz = metrics.delta_z(zp.to_numpy(), df["z_spec"].to_numpy())
        assert f"$N$ = {len(dz)}" in text
        assert f"bias = {metrics.bias(dz):.5f}" in text
        assert f"= {metrics.sigma_mad(dz):.5f}" in text
        assert f"$\\eta$ = {metrics.eta(dz):.2f}%" in text
    assert texts[0].startswith("CNN (this run)") and texts[1].startswith(f"{name} (Photoz table)")
    assert (mode == "sdss") == ("B16-like" not in texts[1])


def test_fig08_and_fig11_legends_name_b16_by_mode(results, default_config):
    for fig_name in ("fig08_bias", "fig11_ebv_inclination"):
        mod = importlib.import_module(FIGURES[fig_name])
        inputs = {k: str(results.parent / v) for k, v in figure_inputs(fig_name, default_config).items()}
        labels = _legend_labels(mod.make(inputs, {**default_config, "mode": "mock"}, common.silence("t")))
        assert any("B16-like (mock)" in s for s in labels), (fig_name, labels)
        assert not any(s.endswith("B16") for s in labels), (fig_name, labels)
        labels = _legend_labels(mod.make(inputs, {**default_config, "mode": "sdss"}, common.silence("t")))
        assert any(s.endswith("B16") for s in labels) and not any("B16-like" in s for s in labels), (fig_name, labels)


def test_fig12_outlines_the_cells_the_search_found(results, default_config, tmp_path, monkeypatch):
    """Fig. 12 outlines exactly the cells of results/zone/zone.json, in both panels."""
    import json

    from photoz import zone as zmod
    from photoz.figures import skymap

    mod = importlib.import_module(FIGURES["fig12_sky_maps"])
    inputs = {k: str(results.parent / v) for k, v in figure_inputs("fig12_sky_maps", default_config).items()}
    z = json.loads((results / "zone" / "zone.json").read_text())
    cat = pd.read_parquet(results / "shards" / "catalog.parquet", columns=["ra", "dec"])
    cells = sorted(set(zmod.cell_of(cat["ra"], cat["dec"], z["nside"]).tolist()))[:3]
    z["cells"] = cells
    (tmp_path / "zone.json").write_text(json.dumps(z))
    inputs["zone"] = str(tmp_path / "zone.json")
    seen = []
    orig = skymap.map_panel

    def spy(fig, spec, ra, dec, values, style):
        seen.append((list(style.outline or []), style.nside))
        return orig(fig, spec, ra, dec, values, style)

    monkeypatch.setattr(skymap, "map_panel", spy)
    mod.make(inputs, default_config, common.silence("t"))
    assert seen == [(cells, z["nside"])] * 2


def test_fig15_writes_the_slopes_of_the_curve_file(results, default_config):
    """The fit labels of Fig. 15 carry the slopes and errors of results/learning_curve.csv, per estimator."""
    mod = importlib.import_module(FIGURES["fig15_learning_curve"])
    inputs = {k: str(results.parent / v) for k, v in figure_inputs("fig15_learning_curve", default_config).items()}
    df = pd.read_csv(inputs["learning_curve"])
    fig = mod.make(inputs, default_config, common.silence("t"))
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    for est, name in (("cnn", "CNN"), ("knn", "kNN")):
        r = df[df["estimator"] == est].iloc[0]
        want = f"{name} fit $\\propto N^{{{r['slope_sigma_mad']:.2f} \\pm {r['slope_sigma_mad_err']:.2f}}}$"
        assert want in labels, (want, labels)


def test_figures_find_their_trials_by_role(results, default_config):
    """INPUTS name trials by role: another main trial's name is followed, and a config without a
    trial lacking the E(B-V) input draws Fig. 11 without that curve (the input is left out)."""
    from photoz.figures import declared_inputs, resolve_inputs

    assert set(FIGURES) == {p.stem for p in (common.STYLE.parent).glob("fig*.py")}
    assert declared_inputs("fig11_ebv_inclination")["ensemble_noebv"] == "results/ensemble/{noebv}.parquet"
    trials = {k: v for k, v in default_config["trials"].items() if v.get("ebv_input", True)}
    cfg = {**default_config, "trials": {"paper": trials["main"], **{k: v for k, v in trials.items() if k != "main"}}}
    got = figure_inputs("fig11_ebv_inclination", cfg)
    assert got["ensemble"] == "results/ensemble/paper.parquet" and "ensemble_noebv" not in got
    assert figure_inputs("fig11_ebv_inclination", default_config)["ensemble_noebv"] == "results/ensemble/noebv.parquet"
    with pytest.raises(ValueError, match="unknown role"):
        resolve_inputs({"x": "results/{nope}.csv"}, default_config)
    inputs = {k: str(results.parent / v) for k, v in figure_inputs("fig11_ebv_inclination", default_config).items()}
    inputs.pop("ensemble_noebv")
    mod = importlib.import_module(FIGURES["fig11_ebv_inclination"])
    labels = _legend_labels(mod.make(inputs, default_config, common.silence("t")))
    assert not any("without" in s for s in labels) and any("with $E(B-V)$" in s for s in labels)
