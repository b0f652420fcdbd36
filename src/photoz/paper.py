"""The paper: its number macros (``variables``) and its PDF (``build``).

``python -m photoz paper variables --results results --out results/paper/variables.tex``
writes one ``\\newcommand`` per number the text of ``paper/ms.tex`` uses, read
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
import math
import platform
import re
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import pandas as pd

from photoz.io import atomic_path, setup_logging

__all__ = ["fmt", "macro", "collect", "write_variables", "build_pdf", "main"]

FMT = {"bias": ".5f", "sigma_mad": ".5f", "eta": ".2f", "crps": ".5f"}
PACKAGES = ["numpy", "scipy", "pandas", "astropy", "torch", "matplotlib", "snakemake", "galsim", "sep"]
#: Table 2 rows the text talks about, by (estimator, subset, widest-removed) of the trial of the full row.
NAMED_ROWS = {"Main": ("cnn", "all", 0.0), "Bsixteen": ("b16", "all", 0.0), "Knn": ("knn", "all", 0.0),
              "NoSuspect": ("cnn", "no_suspect", 0.0), "Widest": ("cnn", "all", 0.2), "Seightytwo": ("cnn", "s82", 0.0)}


class PaperInputError(ValueError):
    """A result file the paper needs is missing or malformed."""


def _isnum(x):
    try:
        return x is not None and not math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def fmt(value, kind):
    """Format a metric as the tables do (LaTeX minus sign); ``--`` if missing."""
    if not _isnum(value):
        return "--"
    s = format(float(value), FMT[kind])
    return f"$-${s[1:]}" if s.startswith("-") else s


def count(value):
    """An integer with thin-space thousands separators (``--`` if missing)."""
    return "--" if not _isnum(value) else f"{int(round(float(value))):,}".replace(",", "\\,")


def tex_escape(s):
    return re.sub(r"([%&#_$])", r"\\\1", str(s))


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


def _col(df, *names):
    for n in names:
        if n in df.columns:
            return n
    return None


def _row_values(r, df):
    """bias, sigma_mad, eta, crps, n_train, n_test and published values of a Table 2 row."""
    out = {}
    for k in ("bias", "sigma_mad", "eta", "crps"):
        out[k] = r.get(k)
        pc = _col(df, f"pub_{k}", f"published_{k}")
        out[f"pub_{k}"] = r.get(pc) if pc else None
    out["n_train"] = r.get(_col(df, "n_train", "train_size") or "n_train")
    out["n_test"] = r.get(_col(df, "n_test", "test_size") or "n_test")
    pc = _col(df, "pub_n_train", "published_train_size")
    out["pub_n_train"] = r.get(pc) if pc else None
    pc = _col(df, "pub_n_test", "published_test_size")
    out["pub_n_test"] = r.get(pc) if pc else None
    return out


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


def collect(results, cfg, data_mode=None, root=None, date=None):
    """All macros of the paper as an ordered dict ``name -> LaTeX text``."""
    from photoz import published
    from photoz.figures.fig08_bias import EUCLID

    results = Path(results)
    root = Path(root) if root else Path(__file__).resolve().parents[2]
    m = {}
    mode = data_mode or cfg.get("mode", "unknown")
    m["DataMode"] = tex_escape(mode)
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
    # protocol, from the config
    m["NFolds"] = str(cfg["dataset"]["n_folds"])
    main_trial = cfg["trials"].get("main", next(iter(cfg["trials"].values())))
    m["NMembers"] = str(main_trial["members"])
    m["NBins"] = str(cfg["bins"]["n"])
    m["ZMax"] = f"{cfg['bins']['z_max']:g}"
    m["RMax"] = f"{cfg['selection']['r_max']:g}"
    bw = (cfg["bins"]["z_max"] - cfg["bins"]["z_min"]) / cfg["bins"]["n"]
    m["BinWidth"] = f"{bw:.5f}"
    m["HalfBinWidth"] = f"{bw / 2:.5f}"
    m["ValidationPercent"] = f"{100 * cfg['dataset']['validation_fraction']:.1f}"
    m["Epochs"] = str(cfg["training"]["epochs"])
    m["BatchSize"] = str(cfg["training"]["batch_size"])
    m["LearningRate"] = f"{cfg['training']['learning_rate']:g}"
    net = main_trial.get("network", cfg["training"]["network"])
    m["NetworkName"] = tex_escape(net)
    m["NetworkWidth"] = f"{cfg['networks'][net]['width']:g}"
    m["NetworkDense"] = str(cfg["networks"][net]["dense"])
    m["CutoutSize"] = str(cfg["cutouts"]["size"])
    m["PixelScale"] = f"{cfg['cutouts']['pixel_scale']:g}"
    m["Resampler"] = tex_escape(cfg["cutouts"]["resampler"])
    m["EuclidReq"] = f"{EUCLID:g}"
    m["OutlierCut"] = "0.05"
    # parameter counts: the model object, and the published figures
    a1 = published.tableA1()
    m["ParamsPaperText"] = count(a1["total_paper"])
    m["ParamsPublishedCode"] = count(a1["total_code"])
    ta = _read_csv(results / "tableA1.csv")
    tot = ta[ta["stage"].astype(str).str.strip().str.startswith("total")]
    m["ParamsOurs"] = count(tot["params"].iloc[0]) if len(tot) else "--"
    # counts of the run
    cat_path = results / "catalog.parquet"
    if cat_path.exists():
        import pyarrow.parquet as pq

        m["NCatalog"] = count(pq.ParquetFile(cat_path).metadata.num_rows)
    else:
        m["NCatalog"] = "--"
    fail_path = results / "cutouts" / "failures.csv"
    fail = _read_csv(fail_path)
    if "specObjID" not in fail.columns:
        raise PaperInputError(f"{fail_path} misses column specObjID")
    m["NCutoutFailures"] = count(fail["specObjID"].nunique())
    m.update(loss_macros(results / "cutouts" / "losses.json"))
    man_path = results / "shards" / "manifest.json"
    if not man_path.exists():
        raise PaperInputError(f"result file {man_path} does not exist")
    man = json.loads(man_path.read_text())
    n_sh = man.get("n_galaxies", man.get("n_rows", man.get("count")))
    if n_sh is None and isinstance(man.get("shards"), list):
        n_sh = sum(int(s.get("n", s.get("rows", 0))) for s in man["shards"])
    m["NShardGalaxies"] = count(n_sh)
    # Table 1: mean over folds
    t1 = _read_csv(results / "table1.csv")
    mean = t1[t1["fold"].astype(str) == "mean"]
    for k, name in (("bias", "Bias"), ("sigma_mad", "SigmaMad"), ("eta", "Eta")):
        m[f"FoldMean{name}"] = fmt(mean[k].iloc[0], k) if len(mean) else "--"
        folds = t1[~t1["fold"].astype(str).isin(["mean", "std"])][k]
        m[f"FoldMin{name}"] = fmt(folds.min(), k)
        m[f"FoldMax{name}"] = fmt(folds.max(), k)
    # Table 2
    t2 = _read_csv(results / "table2.csv")
    for col in ("bias", "sigma_mad", "eta"):
        if col not in t2.columns:
            raise PaperInputError(f"{results / 'table2.csv'} misses column {col}")
    m["NTableTwoRows"] = str(len(t2))
    for name, (est, subset, widest) in NAMED_ROWS.items():
        r = _find_row(t2, est, subset, widest)
        vals = _row_values(r, t2) if r else {}
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
    main = _find_row(t2, "cnn", "all", 0.0)
    b16 = _find_row(t2, "b16", "all", 0.0)
    if main and b16 and _isnum(main["sigma_mad"]) and _isnum(b16["sigma_mad"]) and float(main["sigma_mad"]):
        m["BsixteenOverMain"] = f"{float(b16['sigma_mad']) / float(main['sigma_mad']):.2f}"
    else:
        m["BsixteenOverMain"] = "--"
    pm, pb = published.table2_row("full"), published.table2_row("b16")
    m["PubBsixteenOverMain"] = f"{pb['sigma_mad'] / pm['sigma_mad']:.2f}"
    proto = published.load()["protocol"]
    m["PubMembers"] = count(proto["members"])
    m["PubMaxIterations"] = count(proto["max_iterations"])
    return m


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
    pv.add_argument("--results", default="results")
    pv.add_argument("--config-json", default=None, help="the whole config as JSON (default: config.yaml)")
    pv.add_argument("--data-mode", default=None, help="override the data mode printed (default: config mode)")
    pv.add_argument("--out", default="results/paper/variables.tex")
    pv.add_argument("--log", default=None)
    pb = sub.add_parser("build", help="latexmk paper/ms.tex -> paper/ms.pdf")
    pb.add_argument("--tex", default="paper/ms.tex")
    pb.add_argument("--results", default="results")
    pb.add_argument("--out", default="paper/ms.pdf")
    pb.add_argument("--log", default=None)
    args = parser.parse_args(argv)
    log = setup_logging(args.log, name="photoz.paper")
    if args.cmd == "variables":
        from photoz.figures.common import load_cfg

        cfg = load_cfg(args.config_json)
        macros = collect(args.results, cfg, data_mode=args.data_mode)
        write_variables(macros, args.out)
        log.info("wrote %d macros to %s", len(macros), args.out)
    else:
        build_pdf(args.tex, args.results, args.out, log,
                  keep_log=str(Path(args.log).with_suffix(".latex.log")) if args.log else None)
    return 0
