"""The paper's macros come from the result files, and the built PDF prints Table 2's numbers."""

from __future__ import annotations

import re
import shutil
import subprocess

import pandas as pd
import pytest

from photoz import paper
from photoz.figures import FIGURES, common, figure_inputs
from synthetic_results import write_results


def test_fmt_and_macro_names():
    assert paper.fmt(-0.000123, "bias") == "$-$0.00012"
    assert paper.fmt(float("nan"), "eta") == "--"
    with pytest.raises(ValueError):
        paper.macro("Bias2", "1")


def test_variables_from_tables(tmp_path, default_config):
    res = write_results(tmp_path, n=200, n_images=4)
    macros = paper.collect(res, default_config, data_mode="synthetic-test")
    t2 = pd.read_csv(res / "table2.csv")
    main = t2[(t2["estimator"] == "cnn") & (t2["subset"] == "all")].iloc[0]
    assert macros["MainSigmaMad"] == f"{main['sigma_mad']:.5f}"
    assert macros["ParamsPaperText"] == "27\\,391\\,464"
    out = paper.write_variables(macros, res / "paper" / "variables.tex")
    assert "\\syntheticskytrue" in out.read_text()


def test_missing_table_is_named(tmp_path, default_config):
    res = write_results(tmp_path, n=100, n_images=4)
    (res / "table2.csv").unlink()
    with pytest.raises(paper.PaperInputError, match="table2.csv"):
        paper.collect(res, default_config)


def _plain(s):
    return s.replace("\u2212", "-").replace("$-$", "-")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                    reason="latexmk/pdftotext not installed")
def test_pdf_prints_table2_numbers(tmp_path, root, default_config):
    import matplotlib

    matplotlib.use("Agg")
    import importlib

    res = write_results(tmp_path, n=300, n_images=8)
    for name, modname in FIGURES.items():  # figures are needed by \includegraphics; fig04 drawn too
        mod = importlib.import_module(modname)
        args = sum(([f"--{k.replace('_', '-')}", str(tmp_path / v)] for k, v in figure_inputs(name, default_config).items()), [])
        common.run(mod, args + ["--out", str(res / "figures" / f"{name}.pdf")])
    paper.write_variables(paper.collect(res, default_config, data_mode="synthetic-test"), res / "paper" / "variables.tex")
    pdf = paper.build_pdf(root / "paper" / "ms.tex", res, tmp_path / "ms.pdf")
    text = _plain(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout)
    text = re.sub(r"\s+", " ", text)
    t2 = pd.read_csv(res / "table2.csv")
    main = t2[(t2["estimator"] == "cnn") & (t2["subset"] == "all")].iloc[0]
    b16 = t2[t2["estimator"] == "b16"].iloc[0]
    m = re.search(r"test folds we measure σMAD = ([0-9.]+), a bias of\s*(-?[0-9.]+) and an outlier rate η = ([0-9.]+) %", text)
    assert m, "abstract sentence with the main numbers not found in the PDF text"
    assert float(m.group(1)) == pytest.approx(round(main["sigma_mad"], 5), abs=1e-9)
    assert float(m.group(2)) == pytest.approx(round(main["bias"], 5), abs=1e-9)
    assert float(m.group(3)) == pytest.approx(round(main["eta"], 2), abs=1e-9)
    m = re.search(r"B16-like \(mock\) gives σMAD = ([0-9.]+), bias =\s*(-?[0-9.]+) and η = ([0-9.]+) %", text)
    assert m, "B16 sentence not found"
    assert (float(m.group(1)), float(m.group(2)), float(m.group(3))) == pytest.approx(
        (round(b16["sigma_mad"], 5), round(b16["bias"], 5), round(b16["eta"], 2)), abs=1e-9)
    # every row of Table 2 is printed (the tables helper's fragment)
    for r in t2.itertuples():
        assert f"{r.sigma_mad:.5f}" in text
        assert f"{r.eta:.2f}" in text
    assert "synthetic sky" in text
