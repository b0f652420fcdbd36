"""The paper: its number macros (``variables``) and its PDF (``build``).

``python -m photoz paper variables --table1 results/table1.csv ... --out results/paper/variables.tex``
(each result file by name, or ``--results`` for the folder holding them) writes one ``\\newcommand`` per number the text of ``paper/ms.tex`` uses, read
from the result files (tables, failures, manifest) and the run (config digest,
git commit, software versions, date): the text never contains a typed number.

``python -m photoz paper build --tex paper/ms.tex --results results --out paper/ms.pdf``
runs latexmk on ``ms.tex`` with ``\\resultsdir`` pointing at ``--results``
(so a paper can be built from any results tree, e.g. in the tests).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import re
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import pandas as pd

from photoz import latex, trials, wording
from photoz.io import atomic_path, setup_logging
from photoz.wording import PaperInputError

__all__ = ["fmt", "macro", "result_paths", "collect", "write_variables", "build_pdf", "main"]

FMT = latex.FMT
#: The result files the macros are read from (option of ``paper variables`` -> path below the results folder).
RESULT_FILES = {"table1": "table1.csv", "table2": "table2.csv", "tableA1": "tableA1.csv",
                "catalog": "catalog.parquet", "failures": "cutouts/failures.csv", "manifest": "shards/manifest.json",
                "zone": "zone/zone.json", "zone_validation": "zone/validation.json", "losses": "cutouts/losses.json",
                "swarp_check": "cutouts/swarp_check.json", "learning_curve": "learning_curve.csv",
                "ensemble": "ensemble/main.parquet", "ensemble_noebv": "ensemble/noebv.parquet"}
#: Result files that only some runs have: the zone validation exists in mode mock only, the SWarp check
#: only with cutouts.resampler native and cutouts.swarp_check_galaxies > 0, the learning curve when the
#: config lists learning_curve trials, the two ensembles of the reddening sentence when the config has a
#: trial without the E(B-V) input (photoz.trials.noebv_trial; the workflow gives their trials' paths).
OPTIONAL_FILES = {"zone_validation", "swarp_check", "learning_curve", "ensemble", "ensemble_noebv"}
PACKAGES = ["numpy", "scipy", "pandas", "astropy", "torch", "matplotlib", "snakemake", "galsim", "sep"]
#: Table 2 rows the text talks about, by (estimator, subset, widest-removed) of the trial of the full row.
NAMED_ROWS = {"Main": ("cnn", "all", 0.0), "Bsixteen": ("b16", "all", 0.0), "Knn": ("knn", "all", 0.0),
              "NoSuspect": ("cnn", "no_suspect", 0.0), "Widest": ("cnn", "all", 0.2), "Seightytwo": ("cnn", "s82", 0.0)}


_isnum = latex.isnum


def fmt(value, kind):
    """Format a metric as the tables do (text-mode minus sign); ``--`` if missing."""
    return latex.number(value, kind)


count = latex.count
tex_escape = latex.escape


def macro(name, value):
    """One ``\\newcommand`` line; ``name`` must be letters only."""
    if not re.fullmatch(r"[A-Za-z]+", name):
        raise ValueError(f"macro name {name!r}: LaTeX command names are letters only")
    return f"\\newcommand{{\\{name}}}{{{value}}}"


def _read_csv(path):
    path = Path(path)
    if not path.exists():
        raise PaperInputError(f"result file {path} does not exist (run the tables rules first)")
    return pd.read_csv(path, keep_default_na=True)


#: Columns of a Table 2 row the text quotes (docs/dataflow.md, Sect. 5).
ROW_FIELDS = ("bias", "sigma_mad", "eta", "crps", "n_train", "n_test")


def _row_values(r, df):
    """bias, sigma_mad, eta, crps, n_train, n_test and their published values (``pub_*``) of a Table 2 row."""
    return {**{k: r.get(k) for k in ROW_FIELDS}, **{f"pub_{k}": r.get(f"pub_{k}") for k in ROW_FIELDS}}


def _find_row(t2, estimator, subset, widest):
    est = t2["estimator"].fillna("cnn") if "estimator" in t2.columns else pd.Series("cnn", index=t2.index)
    sel = est == estimator
    if "subset" in t2.columns:
        sel &= t2["subset"].fillna("all") == subset
    elif subset != "all":
        return None
    if "remove_widest" in t2.columns:
        sel &= (t2["remove_widest"].fillna(0.0).astype(float) - widest).abs() < 1e-9
    elif widest:
        return None
    if "trial" in t2.columns and estimator == "cnn" and subset == "all" and widest == 0.0:
        first = t2.loc[sel, "trial"]
        if len(first):
            sel &= t2["trial"] == first.iloc[0]
    hits = t2[sel]
    return None if hits.empty else hits.iloc[0].to_dict()


def _git(root):
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+modified" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def _versions():
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    try:
        text = subprocess.run(["SWarp", "-v"], capture_output=True, text=True, timeout=20).stdout
        m = re.search(r"version\s+([\w.\-]+)", text)
        out["swarp"] = m.group(1) if m else "unknown"
    except (OSError, subprocess.SubprocessError):
        out["swarp"] = "not installed"
    return out


def config_digest(cfg):
    """First 12 hex digits of the sha256 of the config as canonical JSON."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:12]


def result_paths(results="results"):
    """The result files of :data:`RESULT_FILES` below a results folder."""
    return {k: Path(results) / v for k, v in RESULT_FILES.items()}


def collect(inputs, cfg, data_mode=None, root=None, date=None):
    """All macros of the paper as an ordered dict ``name -> LaTeX text``.

    ``inputs``: the result files, a mapping with the keys of :data:`RESULT_FILES`
    (what the workflow's rule declares), or a results folder holding them.
    """
    paths = {k: Path(v) for k, v in inputs.items()} if isinstance(inputs, dict) else result_paths(inputs)
    missing = [k for k in RESULT_FILES if k not in paths and k not in OPTIONAL_FILES]
    if missing:
        raise PaperInputError(f"paper variables: no path given for {', '.join(missing)}")
    m = {}
    m.update(_run_macros(cfg, data_mode or cfg["mode"], root, date))
    m.update(_protocol_macros(cfg))
    m.update(_parameter_macros(paths["tableA1"]))
    m.update(_count_macros(paths["catalog"], paths["failures"], paths["manifest"]))
    m.update(loss_macros(paths["losses"]))
    m.update(_table1_macros(paths["table1"]))
    m.update(_table2_macros(paths["table2"]))
    m.update(_published_macros())
    m.update(_learning_curve_macros(paths.get("learning_curve"), cfg))
    # words and sentences that compare numbers: chosen by the numbers (photoz.wording)
    m.update(wording.macros(paths, cfg, data_mode or cfg["mode"]))
    return m


def _run_macros(cfg, mode, root=None, date=None):
    """The run: data mode, config digest, git commit, date, software versions, seed."""
    root = Path(root) if root else Path(__file__).resolve().parents[2]
    m = {"DataMode": tex_escape(mode)}
    m["DataModeLong"] = {"mock": "the offline mock sky (synthetic SDSS images and catalogue)",
                         "sdss": "SDSS DR12 (real SkyServer catalogue and SAS images)"}.get(
                             mode, f"synthetic test files ({tex_escape(mode)}), not a workflow run")
    m["ConfigDigest"] = config_digest(cfg)
    m["GitCommit"] = tex_escape(_git(root))
    m["RunDate"] = date or dt.date.today().isoformat()
    v = _versions()
    m["SoftwareVersions"] = ", ".join(f"{k} {tex_escape(val)}" for k, val in v.items())
    for k in ("python", "torch", "snakemake", "swarp"):
        m[f"Version{k.capitalize()}"] = tex_escape(v[k])
    m["MasterSeed"] = str(cfg["seed"])
    return m


def _protocol_macros(cfg):
    """The protocol, from the config: folds, members, bins, selection, training, network, cutouts."""
    from photoz.figures.fig08_bias import EUCLID

    m = {"NFolds": str(cfg["dataset"]["n_folds"])}
    main = trials.main_trial(cfg)
    m["NMembers"] = str(cfg["trials"][main]["members"])
    m["NBins"] = str(cfg["bins"]["n"])
    m["ZMax"] = f"{cfg['bins']['z_max']:g}"
    m["RMax"] = f"{cfg['selection']['r_max']:g}"
    bw = (cfg["bins"]["z_max"] - cfg["bins"]["z_min"]) / cfg["bins"]["n"]
    m["BinWidth"] = f"{bw:.5f}"
    m["HalfBinWidth"] = f"{bw / 2:.5f}"
    m["ValidationPercent"] = f"{100 * cfg['dataset']['validation_fraction']:.1f}"
    m["Epochs"] = str(cfg["training"]["epochs"])
    n_min = int(cfg["training"]["min_iterations"])
    m["MinIterations"] = str(n_min)
    m["TrainingFloor"] = (f", or for at least {latex.count(n_min)} iterations where that takes more epochs (the small "
                          "training sets of the learning curve)") if n_min else ""
    frac = float(cfg["training"]["average_fraction"])
    m["KeptWeights"] = {
        "best": "the weights of the epoch with the lowest validation loss are kept",
        "last": "the last epoch's weights are kept",
        "average": ("each member predicts with the mean of its weights over the last "
                    + ("quarter" if frac == 0.25 else f"{latex.number(100 * frac, 'g')}\\,\\%") + " of its epochs, a window "
                    "fixed in advance (stochastic weight averaging; \\citealt{izmailov2018}), rather than with the "
                    "epoch of least validation loss, which a small validation set picks partly by noise"),
    }[cfg["training"]["predict_from"]]
    knn = cfg["knn"]
    grid = knn.get("k_grid")
    m["KnnKChoice"] = (f"its $k$ chosen per fold from {{{', '.join(map(str, grid))}}} by five-fold "
                       "cross-validation on the training side" if grid else f"$k = {int(knn['k'])}$")
    m["BatchSize"] = str(cfg["training"]["batch_size"])
    sigma = float(cfg["training"]["label_sigma_z"])
    m["TrainingTargets"] = (
        "The cross-entropy's target is the class of $z_{\\rm spec}$ alone, as in the paper" if not sigma else
        f"Unlike the paper, whose target is the class of $z_{{\\rm spec}}$ alone, the cross-entropy's target is a "
        f"Gaussian of width {sigma:g} in $z$ centred on that class (normalised over the classes), so that a near miss "
        "costs less than a far one; the validation loss that chooses the kept epoch is still the log-likelihood of the "
        "true class")
    m["LearningRate"] = f"{cfg['training']['learning_rate']:g}"
    net = trials.network_name(cfg, main)
    m["NetworkName"] = tex_escape(net)
    m["NetworkWidth"] = f"{cfg['networks'][net]['width']:g}"
    m["NetworkDense"] = str(cfg["networks"][net]["dense"])
    m["CutoutSize"] = str(cfg["cutouts"]["size"])
    m["PixelScale"] = f"{cfg['cutouts']['pixel_scale']:g}"
    m["Resampler"] = tex_escape(cfg["cutouts"]["resampler"])
    m["EuclidReq"] = f"{EUCLID:g}"
    m["OutlierCut"] = "0.05"
    return m


def _parameter_macros(table_a1):
    """Parameter counts: the published figures and ours (Table A1)."""
    from photoz import published

    a1 = published.tableA1()
    m = {"ParamsPaperText": count(a1["total_paper"]), "ParamsPublishedCode": count(a1["total_code"])}
    ta = _read_csv(table_a1)
    tot = ta[ta["stage"].astype(str).str.strip().str.startswith("total")]
    m["ParamsOurs"] = count(tot["params"].iloc[0]) if len(tot) else "--"
    return m


def _count_macros(catalog, failures, manifest):
    """Galaxy counts of the run: catalog, cutout failures, shards."""
    import pyarrow.parquet as pq

    catalog, failures, manifest = Path(catalog), Path(failures), Path(manifest)
    if not catalog.exists():
        raise PaperInputError(f"result file {catalog} does not exist")
    m = {"NCatalog": count(pq.ParquetFile(catalog).metadata.num_rows)}
    fail = _read_csv(failures)
    if "specObjID" not in fail.columns:
        raise PaperInputError(f"{failures} misses column specObjID")
    m["NCutoutFailures"] = count(fail["specObjID"].nunique())
    if not manifest.exists():
        raise PaperInputError(f"result file {manifest} does not exist")
    man = json.loads(manifest.read_text())
    if "n_galaxies" not in man:
        raise PaperInputError(f"{manifest} has no n_galaxies (docs/dataflow.md, Sect. 3)")
    m["NShardGalaxies"] = count(man["n_galaxies"])
    return m


def _table1_macros(path):
    """Table 1: the mean over folds and the range of the per-fold values."""
    t1 = _read_csv(path)
    mean = t1[t1["fold"].astype(str) == "mean"]
    folds = t1[~t1["fold"].astype(str).isin(["mean", "std"])]
    m = {}
    for k, name in (("bias", "Bias"), ("sigma_mad", "SigmaMad"), ("eta", "Eta")):
        m[f"FoldMean{name}"] = fmt(mean[k].iloc[0], k) if len(mean) else "--"
        m[f"FoldMin{name}"] = fmt(folds[k].min(), k)
        m[f"FoldMax{name}"] = fmt(folds[k].max(), k)
    return m


def _named_row_macros(name, vals):
    """Macros of one Table 2 row the text names (ours and published)."""
    m = {}
    for k, cname in (("bias", "Bias"), ("sigma_mad", "SigmaMad"), ("eta", "Eta"), ("crps", "CRPS")):
        m[f"{name}{cname}"] = fmt(vals.get(k), k)
        m[f"Pub{name}{cname}"] = fmt(vals.get(f"pub_{k}"), k)
    m[f"{name}NTrain"] = count(vals.get("n_train"))
    m[f"{name}NTest"] = count(vals.get("n_test"))
    m[f"Pub{name}NTest"] = count(vals.get("pub_n_test"))
    m[f"Pub{name}NTrain"] = count(vals.get("pub_n_train"))
    if vals and _isnum(vals.get("sigma_mad")) and _isnum(vals.get("pub_sigma_mad")) and float(vals["pub_sigma_mad"]):
        m[f"{name}SigmaRatio"] = f"{float(vals['sigma_mad']) / float(vals['pub_sigma_mad']):.2f}"
    else:
        m[f"{name}SigmaRatio"] = "--"
    return m


def _table2_macros(path):
    """Table 2: its size, the rows the text names, and the B16/CNN ratio."""
    t2 = _read_csv(path)
    for col in ("bias", "sigma_mad", "eta"):
        if col not in t2.columns:
            raise PaperInputError(f"{path} misses column {col}")
    m = {"NTableTwoRows": str(len(t2))}
    for name, (est, subset, widest) in NAMED_ROWS.items():
        r = _find_row(t2, est, subset, widest)
        m.update(_named_row_macros(name, _row_values(r, t2) if r else {}))
    main = _find_row(t2, "cnn", "all", 0.0)
    b16 = _find_row(t2, "b16", "all", 0.0)
    if main and b16 and _isnum(main["sigma_mad"]) and _isnum(b16["sigma_mad"]) and float(main["sigma_mad"]):
        m["BsixteenOverMain"] = f"{float(b16['sigma_mad']) / float(main['sigma_mad']):.2f}"
    else:
        m["BsixteenOverMain"] = "--"
    return m


def _learning_curve_macros(path, cfg):
    """The learning curve's numbers and sentences (``photoz.learning_curve.macros``); ``LcNPoints`` 0 without one."""
    from photoz import learning_curve

    if not trials.learning_curve(cfg):
        return learning_curve.macros(None)
    if path is None:
        raise PaperInputError("paper variables: the config lists learning_curve trials but no --learning_curve file "
                              "is given")
    try:
        return learning_curve.macros(path)
    except (OSError, ValueError) as err:
        raise PaperInputError(str(err)) from None


def _published_macros():
    """Published numbers the text quotes beside ours."""
    from photoz import published

    pm, pb = published.table2_row("full"), published.table2_row("b16")
    proto = published.load()["protocol"]
    return {"PubBsixteenOverMain": f"{pb['sigma_mad'] / pm['sigma_mad']:.2f}",
            "PubMembers": count(proto["members"]), "PubMaxIterations": count(proto["max_iterations"])}


# --- galaxies lost per stage and why (results/cutouts/losses.json, photoz.cutouts.losses) ---

def loss_macros(path):
    """``NLost{Stage}``, ``NLostTotal``, ``LostPercent``, ``MaxLostPercent``, ``LostReasons``, ``NDegraded``.

    ``--`` for every macro when ``path`` does not exist (a results tree made without the shards step).
    """
    from photoz.cutouts.losses import REASONS

    names = {"catalog": "NLostCatalog", "frame_index": "NLostFrameIndex", "retrieval": "NLostRetrieval",
             "cutouts": "NLostCutouts"}
    path = Path(path)
    if not path.exists():
        return {**{v: "--" for v in names.values()}, "NLostTotal": "--", "LostPercent": "--",
                "MaxLostPercent": "--", "LostReasons": "--", "NDegraded": "--"}
    try:
        d = json.loads(path.read_text())
        m = {name: count(d["stages"][stage]["n_lost"]) for stage, name in names.items()}
        m["NLostTotal"] = count(d["n_lost"])
        m["LostPercent"] = f"{100 * d['lost_fraction']:.1f}"
        m["MaxLostPercent"] = f"{100 * d['max_lost_fraction']:g}"
        m["NDegraded"] = count(d.get("n_degraded", 0))
        reasons = sorted(((k, c) for s_ in d["stages"].values() for c, k in s_["by_reason"].items() if k),
                         key=lambda t: (-t[0], list(REASONS).index(t[1])))
    except (KeyError, TypeError, ValueError) as err:
        raise PaperInputError(f"{path}: malformed losses summary ({type(err).__name__}: {err})") from None
    m["LostReasons"] = "; ".join(f"{count(k)} {tex_escape(REASONS[c][1])}" for k, c in reasons) or "none"
    return m


def write_variables(macros, out):
    """Write the macros to ``out`` atomically, with a header naming their origin."""
    lines = ["% Generated by `python -m photoz paper variables`: do not edit.",
             "% Every number of paper/ms.tex comes from this file."]
    mock = macros.get("DataMode", "") != "sdss"
    lines.append("\\newif\\ifsyntheticsky" + ("\\syntheticskytrue" if mock else "\\syntheticskyfalse"))
    lines += [macro(k, v) for k, v in macros.items()]
    with atomic_path(out) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    return Path(out)


def build_pdf(tex, results, out, log=None, keep_log=None):
    """Run latexmk on ``tex`` (with ``\\resultsdir`` = ``results``) and put the PDF at ``out`` atomically."""
    tex = Path(tex).resolve()
    results = Path(results).resolve()
    if not tex.exists():
        raise PaperInputError(f"{tex} does not exist")
    if shutil.which("latexmk") is None:
        raise PaperInputError("latexmk is not installed (Debian: apt-get install latexmk texlive-latex-extra)")
    with tempfile.TemporaryDirectory(prefix="photoz-paper-") as tmp:
        pre = f"\\def\\resultsdir{{{results.as_posix()}}}"
        cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
               f"-outdir={tmp}", f"-usepretex={pre}", tex.name]
        if log:
            log.info("running %s in %s", " ".join(cmd), tex.parent)
        proc = subprocess.run(cmd, cwd=tex.parent, capture_output=True, text=True)
        texlog = Path(tmp) / (tex.stem + ".log")
        if keep_log and texlog.exists():
            Path(keep_log).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(texlog, keep_log)
        pdf = Path(tmp) / (tex.stem + ".pdf")
        if proc.returncode != 0 or not pdf.exists():
            tail = (texlog.read_text(errors="replace")[-3000:] if texlog.exists() else proc.stdout[-3000:])
            raise RuntimeError(f"latexmk failed on {tex} (exit {proc.returncode}); end of the LaTeX log:\n{tail}")
        with atomic_path(out) as dst:
            shutil.copy(pdf, dst)
    if log:
        log.info("wrote %s", out)
    return Path(out)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="photoz paper", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    pv = sub.add_parser("variables", help="write results/paper/variables.tex")
    pv.add_argument("--results", default="results", help="folder of the result files not given one by one")
    for key, rel in RESULT_FILES.items():
        pv.add_argument(f"--{key}", default=None, help=f"result file (default: RESULTS/{rel})")
    pv.add_argument("--config-json", default=None, help="the whole config as JSON (default: config.yaml)")
    pv.add_argument("--data-mode", default=None, help="override the data mode printed (default: config mode)")
    pv.add_argument("--out", default="results/paper/variables.tex")
    pv.add_argument("--log", default=None)
    pb = sub.add_parser("build", help="latexmk paper/ms.tex -> paper/ms.pdf")
    pb.add_argument("--tex", default="paper/ms.tex")
    pb.add_argument("--results", default="results", help="folder of variables.tex's results (\\resultsdir)")
    pb.add_argument("--out", default="paper/ms.pdf")
    pb.add_argument("--log", default=None)
    args = parser.parse_args(argv)
    log = setup_logging(args.log, name="photoz.paper")
    if args.cmd == "variables":
        from photoz.figures.common import load_cfg

        cfg = load_cfg(args.config_json)
        paths = {k: getattr(args, k) or p for k, p in result_paths(args.results).items()}
        macros = collect(paths, cfg, data_mode=args.data_mode)
        write_variables(macros, args.out)
        log.info("wrote %d macros to %s", len(macros), args.out)
    else:
        build_pdf(args.tex, args.results, args.out, log,
                  keep_log=str(Path(args.log).with_suffix(".latex.log")) if args.log else None)
    return 0
