"""Every figure script runs on small synthetic result files and writes a PDF and a PNG."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

from photoz.figures import FIGURES, common
from photoz.figures.synthetic import write_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return write_results(tmp_path_factory.mktemp("fig"), n=600, n_images=16)


def _args(mod, res):
    args = []
    for key, default in mod.INPUTS.items():
        args += [f"--{key.replace('_', '-')}", str(res.parent / default)]
    return args


@pytest.mark.parametrize("name", [n for n in FIGURES if n != "fig04_architecture"])
def test_figure_writes_pdf_and_png(name, results):
    mod = importlib.import_module(FIGURES[name])
    out = results / "figures" / f"{name}.pdf"
    assert mod.main(_args(mod, results) + ["--out", str(out)]) == 0
    assert out.stat().st_size > 1000
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_column_names_file(results, tmp_path):
    bad = tmp_path / "ens.parquet"
    pd.read_parquet(results / "ensemble" / "main.parquet").drop(columns=["z_phot"]).to_parquet(bad)
    mod = importlib.import_module(FIGURES["fig06_dz"])
    with pytest.raises(common.FigureInputError, match="ens.parquet.*z_phot"):
        mod.main(["--ensemble", str(bad), "--out", str(tmp_path / "x.pdf")])
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
