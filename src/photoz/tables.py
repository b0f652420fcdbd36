"""Tables 1, 2 and A1 of the paper, computed from the run's own outputs.

Each table is written as CSV (our numbers with the published ones beside) and
as a LaTeX ``tabular`` fragment that the paper ``\\input``s.

* **Table 1** -- bias, σ_MAD and η of each cross-validation fold of one trial
  (``results/ensemble/{trial}.parquet``), their mean and standard deviation
  over the folds, with bootstrap errors per fold.
* **Table 2** -- one row per entry of the config's ``table2:`` list: a trial's
  ensemble predictions, a test subset (``all``, ``no_suspect``: outside the
  region of ``--zone`` (``photoz.zone``: the cells of the zones found, in
  every mode), else outside the ``regions.suspect_zone`` box; ``s82`` / ``no_s82``: the catalog's
  ``stripe82`` flag), optionally without the ``remove_widest`` fraction of
  the widest 68% PDF intervals of that subset, and an estimator: the CNN
  (``cnn``), the catalog's Photoz redshift (``b16``) or our kNN (``knn``),
  always on the same galaxies (a ``remove_widest`` cut uses the CNN's PDF
  widths whatever the estimator; galaxies without a Photoz redshift are left
  out of a ``b16`` row and counted in its ``n_test``). Columns: training size, test size, bias,
  σ_MAD, η (each ± bootstrap error), mean CRPS (CNN only; recomputed here from
  the PDFs), and the published values (``photoz.published``).
* **Table A1** -- every layer of the network built from the config's ``full``
  network (``photoz.nn.model.layer_table``), with the per-stage parameter
  counts of the published code beside, and the paper's stated total noted.

Command: ``python -m photoz tables {table1,table2,tableA1} ...`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from photoz import bins as zbins
from photoz import latex, metrics, published, trials as ztrials
from photoz.io import atomic_path, setup_logging
from photoz.regions import in_region as in_box  # the one region test (RA/Dec box or survey stripes)

__all__ = [
    "ENSEMBLE_COLUMNS",
    "read_ensemble",
    "in_box",
    "subset_mask",
    "training_size",
    "table1",
    "table2",
    "tableA1",
    "latex_table1",
    "latex_table2",
    "latex_tableA1",
    "main",
]

log = logging.getLogger("photoz.tables")

ENSEMBLE_COLUMNS = ("specObjID", "fold", "z_spec", "z_phot", "width68", "pdf")
CATALOG_COLUMNS = ("specObjID", "z", "ra", "dec", "stripe82", "zphot")


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def _pdf_matrix(column, n_rows, source):
    """A parquet list column of PDFs as a (N, n_bins) float32 array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if col.null_count:
        raise ValueError(f"{source}: {col.null_count} rows have a null pdf")
    if n_rows == 0:
        return np.zeros((0, 0), dtype=np.float32)
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    if lengths.min() != lengths.max():
        bad = int(np.flatnonzero(lengths != lengths[0])[0])
        raise ValueError(f"{source}: pdf lengths differ (row 0 has {lengths[0]}, row {bad} has {lengths[bad]})")
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float32).reshape(n_rows, int(lengths[0]))


def read_ensemble(path, with_pdf=True):
    """Read ``results/ensemble/{trial}.parquet``.

    Returns
    -------
    df : DataFrame with ``specObjID, fold, z_spec, z_phot, width68`` (and
        ``crps``, ``pit`` if present)
    pdf : ndarray (N, n_bins) float32, or None when ``with_pdf`` is False
    """
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    need = ENSEMBLE_COLUMNS if with_pdf else ENSEMBLE_COLUMNS[:-1]
    missing = [c for c in need if c not in names]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (docs/dataflow.md, Sect. 4)")
    scalars = [c for c in names if c in ("specObjID", "fold", "z_spec", "z_phot", "width68", "pit", "crps")]
    table = pq.read_table(path, columns=scalars + (["pdf"] if with_pdf else []))
    df = table.select(scalars).to_pandas()
    if df["specObjID"].duplicated().any():
        dup = df.loc[df["specObjID"].duplicated(), "specObjID"].iloc[0]
        raise ValueError(f"{path}: specObjID {dup} appears more than once")
    for c in ("z_spec", "z_phot", "width68"):
        bad = ~np.isfinite(df[c].to_numpy(dtype=np.float64))
        if bad.any():
            raise ValueError(f"{path}: {int(bad.sum())} non-finite {c}, e.g. specObjID {df['specObjID'][bad].iloc[0]}")
    pdf = _pdf_matrix(table.column("pdf"), len(df), path) if with_pdf else None
    return df, pdf


def read_catalog(path, columns=None):
    """Columns of ``results/shards/catalog.parquet`` (those present among ``columns``)."""
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if "specObjID" not in names:
        raise ValueError(f"{path}: no specObjID column")
    if columns is None:
        keep = names
    else:
        from photoz.dataset.splits import is_split_column

        keep = [c for c in names if c in columns or is_split_column(c)]
    return pd.read_parquet(path, columns=keep)


def subset_mask(subset, cat, regions):
    """Test subset of Table 2 for catalog rows ``cat`` (aligned with the predictions).

    ``all``; ``no_suspect``: outside ``regions.suspect_zone``; ``s82`` /
    ``no_s82``: the catalog's ``stripe82`` flag (the ``regions.stripe82`` box
    where the flag is absent).
    """
    n = len(cat)
    if subset == "all":
        return np.ones(n, dtype=bool)
    if subset == "no_suspect":
        if "suspect_region" in regions:  # the zone analysis' choice (photoz.zone.table2_region)
            from photoz.zone import region_mask

            return ~region_mask(cat["ra"], cat["dec"], regions["suspect_region"])
        return ~in_box(cat["ra"], cat["dec"], regions["suspect_zone"])
    if subset in ("s82", "no_s82"):
        if "stripe82" in cat.columns:
            s82 = cat["stripe82"].to_numpy().astype(bool)
        else:
            s82 = in_box(cat["ra"], cat["dec"], regions["stripe82"])
        return s82 if subset == "s82" else ~s82
    raise ValueError(f"unknown subset {subset!r}; allowed: all, no_suspect, s82, no_s82")


def training_size(cat, trial, folds, exclude_validation=True):
    """Mean number of training galaxies over a trial's folds.

    With ``exclude_validation`` (the CNN), the validation subset of the fold
    (``val_{f}``; ``val_0`` for one-split trials) is left out, as in the
    paper's 393,219; the kNN trains on the whole training side.
    """
    from photoz.knn import trial_split

    sizes = [int(trial_split(cat, trial, f, with_validation=not exclude_validation)[0].sum()) for f in folds]
    return float(np.mean(sizes)) if sizes else float("nan")


# --------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------
def table1(ens, n_bootstrap, seed):
    """Per-fold bias, σ_MAD, η of one trial's ensemble, their mean and std (ddof=1).

    The published fold values (paper folds 1..5) stand beside ours in fold
    order; the assignment of galaxies to folds is random in both, so only the
    spread and the mean compare.
    """
    pub_folds, pub_mean = published.table1()
    rows = []
    folds = sorted(int(f) for f in pd.unique(ens["fold"]))
    for i, f in enumerate(folds):
        sel = ens["fold"].to_numpy() == f
        zp, zs = ens["z_phot"].to_numpy()[sel], ens["z_spec"].to_numpy()[sel]
        r = {"fold": str(f + 1), **metrics.point_metrics(zp, zs), **metrics.bootstrap(zp, zs, n_bootstrap, seed + f)}
        p = pub_folds[i] if i < len(pub_folds) else {}
        r.update({f"pub_{k}": p.get(k, np.nan) for k in metrics_keys()})
        rows.append(r)
    df = pd.DataFrame(rows)
    # the paper's mean row: mean of the per-fold values, with one fold's (mean) N
    mean = {"fold": "mean", "n": float(df["n"].mean())}
    std = {"fold": "std", "n": np.nan}
    for k in metrics_keys():
        mean[k] = df[k].mean()
        std[k] = df[k].std(ddof=1) if len(df) > 1 else np.nan
        mean[f"{k}_err"] = std[f"{k}_err"] = np.nan
        mean[f"pub_{k}"] = pub_mean[k]
        std[f"pub_{k}"] = np.nan
    df = pd.concat([df, pd.DataFrame([mean, std])], ignore_index=True)
    cols = ["fold", "n"] + [c for k in metrics_keys() for c in (k, f"{k}_err")] + [f"pub_{k}" for k in metrics_keys()]
    return df[cols].rename(columns={"n": "n_test"})


def metrics_keys():
    return ("bias", "sigma_mad", "eta")


# --------------------------------------------------------------------------
# Table 2
# --------------------------------------------------------------------------
def _align(ids, table, what, source):
    """Row positions of ``ids`` in ``table`` (by specObjID); every id must be there."""
    index = pd.Index(table["specObjID"].to_numpy())
    if not index.is_unique:
        raise ValueError(f"{source}: specObjID not unique")
    pos = index.get_indexer(ids)
    if (pos < 0).any():
        missing = np.asarray(ids)[pos < 0]
        raise ValueError(f"{source}: {int((pos < 0).sum())} {what} galaxies missing, e.g. specObjID {missing[:3].tolist()}")
    return pos


@dataclass
class TrialPredictions:
    """The predictions of some trials, and the files they came from (named in errors).

    ``ensembles``: trial -> (DataFrame, pdf ndarray), :func:`read_ensemble` of
    ``results/ensemble/{trial}.parquet``; ``knns``: trial -> ``results/knn/{trial}.parquet``;
    ``members``: trial -> list of (specObjID, pdf) of each member's fold-0 predictions
    (``results/predictions/{trial}/fold0/seed{s}.npz``; the learning curve's member spread);
    ``ensemble_names``, ``knn_names``: trial -> path.
    """

    ensembles: dict
    knns: dict = field(default_factory=dict)
    members: dict = field(default_factory=dict)
    ensemble_names: dict = field(default_factory=dict)
    knn_names: dict = field(default_factory=dict)

    def sources(self, t):
        """The ensemble's and the kNN's file names of trial ``t``."""
        return self.ensemble_names.get(t, ztrials.ensemble_path(t)), self.knn_names.get(t, ztrials.knn_path(t))


def table2(rows, preds, catalog, cfg, bin_edges, catalog_name="catalog"):
    """Compute every Table 2 row.

    Parameters
    ----------
    rows : list of dict
        The config's ``table2`` entries (label, trial, subset, remove_widest,
        estimator, published).
    preds : TrialPredictions
        The rows' trials' ensembles and kNN predictions.
    catalog : DataFrame
        ``results/shards/catalog.parquet`` columns (specObjID, z, ra, dec,
        stripe82, zphot, fold, sel_*, val_*).
    cfg : dict
        ``regions`` and ``trials`` (the config's), ``n_folds``, ``bootstrap`` (resamples) and ``seed``.
    bin_edges : ndarray (n_bins + 1,)

    Returns
    -------
    DataFrame, one row per entry of ``rows``.
    """
    cache = {}
    out = []
    for i, row in enumerate(rows):
        trial = row["trial"]
        if trial not in preds.ensembles:
            raise ValueError(f"table2[{i}] ({row['label']!r}): no ensemble predictions for trial {trial!r}")
        if trial not in cache:
            cache[trial] = _trial_predictions(trial, preds.ensembles[trial], catalog, cfg, bin_edges,
                                              catalog_name, preds.sources(trial)[0])
        out.append(_table2_row(i, row, cache[trial], preds, cfg, catalog_name))
    return pd.DataFrame(out)


def _trial_predictions(trial, ensemble, catalog, cfg, bin_edges, catalog_name, source):
    """A trial's predictions aligned with its catalog rows, the CRPS of each PDF and the training sizes."""
    ens, pdf = ensemble
    pos = _align(ens["specObjID"].to_numpy(), catalog, "test", catalog_name)
    cat = catalog.iloc[pos].reset_index(drop=True)
    dzs = np.abs(cat["z"].to_numpy(dtype=np.float64) - ens["z_spec"].to_numpy(dtype=np.float64))
    if (dzs > 1e-4).any():
        j = int(np.argmax(dzs))
        raise ValueError(f"{source}: z_spec of specObjID {ens['specObjID'].iloc[j]} differs from {catalog_name} z by {dzs[j]:.3g}")
    edges = bin_edges
    if pdf.shape[1] != len(edges) - 1:
        raise ValueError(f"{source}: PDFs have {pdf.shape[1]} bins, the config's bins.n is {len(edges) - 1}")
    crps = metrics.crps(pdf, ens["z_spec"].to_numpy(), edges)
    if "crps" in ens.columns:
        diff = np.max(np.abs(crps - ens["crps"].to_numpy())) if len(crps) else 0.0
        log.info("trial %s: CRPS recomputed from the PDFs; max |difference| to the ensemble's crps column %.2e", trial, diff)
    spec = cfg["trials"][trial]
    folds = ztrials.folds(spec, cfg["n_folds"])
    return {"ens": ens, "cat": cat, "crps": crps, "folds": folds,
            "n_train_cnn": training_size(catalog, spec, folds, True),
            "n_train_all": training_size(catalog, spec, folds, False)}


def _remove_widest(mask, width68, frac):
    """``mask`` without the ``frac`` widest 68% intervals among its galaxies, and the width cut (NaN if none)."""
    if not frac or not mask.any():
        return mask, np.nan
    w = width68.to_numpy(dtype=np.float64)
    cut = float(np.quantile(w[mask], 1.0 - frac))
    return mask & (w <= cut), cut


def _estimate(est, where, trial, c, preds, catalog_name):
    """The estimator's redshifts ``zp``, where it has one (``valid``), and its training size."""
    ens, cat = c["ens"], c["cat"]
    if est == "cnn":
        return ens["z_phot"].to_numpy(dtype=np.float64), np.ones(len(ens), dtype=bool), c["n_train_cnn"]
    if est == "b16":
        if "zphot" not in cat.columns:
            raise ValueError(f"{where}: {catalog_name} has no zphot column (the Photoz table's B16 redshift)")
        zp = cat["zphot"].to_numpy(dtype=np.float64)
        return zp, np.isfinite(zp) & (zp > -1), np.nan
    if est == "knn":
        if trial not in preds.knns:
            raise ValueError(f"{where}: no kNN predictions for trial {trial!r}")
        k = preds.knns[trial]
        pos = _align(ens["specObjID"].to_numpy(), k, "test", preds.sources(trial)[1])
        return k["z_phot"].to_numpy(dtype=np.float64)[pos], np.ones(len(ens), dtype=bool), c["n_train_all"]
    raise ValueError(f"{where}: unknown estimator {est!r}; allowed: cnn, b16, knn")


def _sample(mask, width68, frac, valid):
    """The galaxies a row scores: ``mask`` without the ``frac`` widest PDFs (cut on the CNN's widths
    of the subset), then without galaxies the estimator has no value for; and the width cut."""
    mask, cut = _remove_widest(mask, width68, frac)
    return mask & valid, cut


def _scores(zp, zs, mask, n_bootstrap, seed, where, row, trial):
    """Point metrics and bootstrap errors on the masked galaxies (NaN for an empty subset)."""
    if mask.any():
        return metrics.point_metrics(zp[mask], zs[mask]), metrics.bootstrap(zp[mask], zs[mask], n_bootstrap, seed)
    log.warning("%s: no test galaxies in subset %r of trial %r; the row is empty", where, row["subset"], trial)
    return ({"n": 0, "bias": np.nan, "sigma_mad": np.nan, "eta": np.nan},
            {"bias_err": np.nan, "sigma_mad_err": np.nan, "eta_err": np.nan})


def _fold_scores(zp, zs, subset, valid, c, frac, est, where):
    """Per-fold metrics of a row (each fold with its own widest-PDF cut): one dict per fold."""
    fold = c["ens"]["fold"].to_numpy()
    out = []
    for f in c["folds"]:
        mask, cut = _sample(subset & (fold == f), c["ens"]["width68"], frac, valid)
        if not mask.any():
            log.warning("%s: fold %d has no test galaxies in this row; it is left out of the fold mean", where, f)
            continue
        r = {"fold": f, "width_cut": cut, **metrics.point_metrics(zp[mask], zs[mask])}
        r["crps"] = float(np.mean(c["crps"][mask])) if est == "cnn" else np.nan
        out.append(r)
    return out


def _fold_mean(per_fold):
    """Mean over folds of each metric, ± their standard deviation (ddof=1), and the mean per-fold N."""
    df = pd.DataFrame(per_fold)
    out = {"n_test": float(df["n"].mean()), "width_cut": float(df["width_cut"].mean()), "n_folds": len(df)}
    for k in ("bias", "sigma_mad", "eta", "crps"):
        out[k] = float(df[k].mean()) if df[k].notna().any() else np.nan
        out[f"{k}_err"] = float(df[k].std(ddof=1)) if len(df) > 1 and df[k].notna().any() else np.nan
    return out


def _table2_row(i, row, c, preds, cfg, catalog_name):
    """Row ``i`` of Table 2: its subset, estimator, metrics and the published values.

    A trial tested on several folds (the main trial) is scored as the paper
    does: each metric on each fold, then their mean ± their standard deviation
    over the folds, with the mean per-fold N (the paper quotes one fold's N).
    The pooled values (all folds' galaxies at once, bootstrap errors) stay as
    ``pooled_*`` columns. A one-split trial's row is its fold's values with
    bootstrap errors (``pooled_*`` the same).
    """
    trial, est = row["trial"], row["estimator"]
    where = f"table2[{i}] ({row['label']!r})"
    n_bootstrap, seed = cfg["bootstrap"], cfg["seed"]
    frac = row.get("remove_widest")
    subset = subset_mask(row["subset"], c["cat"], cfg["regions"])
    zp, valid, n_train = _estimate(est, where, trial, c, preds, catalog_name)
    pooled, width_cut = _sample(subset, c["ens"]["width68"], frac, valid)
    if est == "b16":
        cut_only, _ = _remove_widest(subset, c["ens"]["width68"], frac)
        if (cut_only & ~valid).any():
            log.warning("%s: %d galaxies have no B16 redshift and are left out", where, int((cut_only & ~valid).sum()))
    zs = c["ens"]["z_spec"].to_numpy(dtype=np.float64)
    pm, be = _scores(zp, zs, pooled, n_bootstrap, seed + 1000 * i, where, row, trial)
    crps_pooled = float(np.mean(c["crps"][pooled])) if est == "cnn" and pooled.any() else np.nan
    pooled_cols = {"pooled_n_test": pm["n"], "pooled_bias": pm["bias"], "pooled_bias_err": be["bias_err"],
                   "pooled_sigma_mad": pm["sigma_mad"], "pooled_sigma_mad_err": be["sigma_mad_err"],
                   "pooled_eta": pm["eta"], "pooled_eta_err": be["eta_err"], "pooled_crps": crps_pooled}
    vals = {"n_test": pm["n"], "width_cut": width_cut, "n_folds": 1, "errors": "bootstrap",
            "bias": pm["bias"], "bias_err": be["bias_err"], "sigma_mad": pm["sigma_mad"],
            "sigma_mad_err": be["sigma_mad_err"], "eta": pm["eta"], "eta_err": be["eta_err"], "crps": crps_pooled}
    if len(c["folds"]) > 1:
        per_fold = _fold_scores(zp, zs, subset, valid, c, frac, est, where)
        if per_fold:
            vals.update(_fold_mean(per_fold), errors="folds")
    key = row.get("published")
    pub = published.table2_row(key) if key else {}
    log.info("%s: n_test=%s bias=%.5f sigma_mad=%.5f eta=%.2f%% crps=%s (%s over %d fold(s)); pooled: n=%d sigma_mad=%.5f",
             where, f"{vals['n_test']:.1f}", vals["bias"], vals["sigma_mad"], vals["eta"],
             f"{vals['crps']:.5f}" if np.isfinite(vals["crps"]) else "-",
             "mean" if vals["errors"] == "folds" else "value", vals["n_folds"], pm["n"], pm["sigma_mad"])
    return {
        "label": row["label"], "trial": trial, "estimator": est, "subset": row["subset"],
        "remove_widest": frac or 0.0, "width_cut": vals["width_cut"],
        "n_train": n_train, "n_test": vals["n_test"],
        "bias": vals["bias"], "bias_err": vals["bias_err"],
        "sigma_mad": vals["sigma_mad"], "sigma_mad_err": vals["sigma_mad_err"],
        "eta": vals["eta"], "eta_err": vals["eta_err"], "crps": vals["crps"],
        "published": key or "",
        **{f"pub_{f}": (np.nan if pub.get(f) is None else pub.get(f)) for f in published.TABLE2_FIELDS},
        "n_folds": vals["n_folds"], "errors": vals["errors"], "crps_err": vals.get("crps_err", np.nan), **pooled_cols,
    }


# --------------------------------------------------------------------------
# Table A1
# --------------------------------------------------------------------------
def tableA1(network=None, n_bins=180, ebv_input=True):
    """Layer table of the network built from ``network`` = {width, dense} (default: the published one)."""
    from photoz.nn.model import build_model, layer_table

    network = network or {"width": 1.0, "dense": 1096}
    model = build_model(network, n_bins=n_bins, ebv_input=ebv_input)
    ref = published.tableA1()
    rows = []
    for r in layer_table(model):
        stage = str(r.get("stage", ""))
        key = stage.strip().split(" ")[0] if stage.strip() else ""
        pub = ref["total_code"] if key == "total" else ref["stages"].get(key) if not stage.startswith(" ") else None
        rows.append({"stage": stage, "operation": r.get("operation", ""), "kernel": r.get("kernel", ""),
                     "maps": r.get("maps", ""), "output": r.get("output", r.get("output_shape", "")),
                     "params": r.get("params"), "published_params": pub})
    if not rows or rows[-1]["stage"] != "total":
        from photoz.nn.model import count_parameters

        rows.append({"stage": "total", "operation": "trainable parameters", "kernel": "", "maps": "", "output": "",
                     "params": count_parameters(model), "published_params": ref["total_code"]})
    rows.append({"stage": "total (paper text)", "operation": "as stated in Sect. 3 of the paper", "kernel": "",
                 "maps": "", "output": "", "params": None, "published_params": ref["total_paper"]})
    df = pd.DataFrame(rows)
    df["params"] = df["params"].astype("Int64")
    df["published_params"] = df["published_params"].astype("Int64")
    return df


# --------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------
_tex_escape, _isnum, _num, _count, _pm = latex.escape, latex.isnum, latex.number, latex.count, latex.pm
FMT = latex.FMT


def latex_table1(df):
    """``tabular`` fragment of Table 1: ours (± bootstrap) and the published values in parentheses."""
    lines = [r"\begin{tabular}{lrlll}", r"\hline",
             r"Fold & $N_\mathrm{test}$ & bias & $\sigma_\mathrm{MAD}$ & $\eta$ (\%) \\", r"\hline"]
    for _, r in df.iterrows():
        cells = [_tex_escape(r["fold"]), _count(r["n_test"])]
        for k in metrics_keys():
            ours = _pm(r[k], r[f"{k}_err"], FMT[k])
            pub = f" ({_num(r[f'pub_{k}'], FMT[k])})" if _isnum(r[f"pub_{k}"]) else ""
            cells.append(ours + pub)
        if r["fold"] == "mean":
            lines.append(r"\hline")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)


def latex_table2(df):
    """``tabular`` fragment of Table 2: each row ours, then the published row in italics."""
    lines = [r"\begin{tabular}{lrrllll}", r"\hline",
             r"Trial & $N_\mathrm{train}$ & $N_\mathrm{test}$ & bias & $\sigma_\mathrm{MAD}$ & $\eta$ (\%) & CRPS \\",
             r"\hline"]
    for _, r in df.iterrows():
        cells = [_tex_escape(r["label"]), _count(r["n_train"]), _count(r["n_test"])]
        cells += [_pm(r[k], r[f"{k}_err"], FMT[k]) for k in metrics_keys()]
        cells.append(_pm(r["crps"], r.get("crps_err", np.nan), FMT["crps"]))
        lines.append(" & ".join(cells) + r" \\")
        if r["published"]:
            pub = [r"\quad\textit{published}", _count(r["pub_n_train"]), _count(r["pub_n_test"])]
            pub += [_num(r[f"pub_{k}"], FMT[k]) for k in ("bias", "sigma_mad", "eta", "crps")]
            lines.append(" & ".join(pub) + r" \\")
    lines.append(r"\hline")
    if "errors" in df.columns and (df["errors"] == "folds").any():
        lines.append(r"\multicolumn{7}{l}{\footnotesize Trials tested on every fold: mean of the per-fold values "
                     r"$\pm$ their standard deviation, $N_\mathrm{test}$ per fold; other rows: $\pm$ bootstrap error.} \\")
    lines += [r"\end{tabular}", ""]
    return "\n".join(lines)


def latex_tableA1(df):
    """``tabular`` fragment of Table A1 with the published code's counts and the paper's total."""
    lines = [r"\begin{tabular}{lllllrr}", r"\hline",
             r"Stage & Operation & Kernel & Maps & Output & Parameters & Published \\", r"\hline"]
    for _, r in df.iterrows():
        stage = str(r["stage"])
        indent = r"\quad " if stage.startswith(" ") or not stage else ""
        if stage.startswith("total") and not lines[-1] == r"\hline":
            lines.append(r"\hline")
        cells = [indent + _tex_escape(stage.strip()), indent + _tex_escape(str(r["operation"]).strip()),
                 _tex_escape(r["kernel"]), _tex_escape(r["maps"]), _tex_escape(r["output"]).replace("x", r"$\times$"),
                 _count(r["params"]) if _isnum(r["params"]) else "", _count(r["published_params"]) if _isnum(r["published_params"]) else ""]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------
def _write(df, csv, tex, texfn):
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False, float_format="%.8g")
    with atomic_path(tex) as tmp:
        tmp.write_text(texfn(df))
    log.info("wrote %s and %s", csv, tex)


def parse_pairs(values, what):
    """``['TRIAL=PATH', ...]`` (an option's values) as ``{TRIAL: PATH}``; ``what`` names the option in errors."""
    out = {}
    for v in values or []:
        if "=" not in v:
            raise ValueError(f"--{what} expects TRIAL=PATH, got {v!r}")
        k, p = v.split("=", 1)
        out[k] = p
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz tables", description="Tables 1, 2 and A1 of the paper.")
    sub = p.add_subparsers(dest="table", required=True)
    t1 = sub.add_parser("table1", help="per-fold metrics of one trial")
    t1.add_argument("--ensemble", required=True)
    t1.add_argument("--bootstrap", type=int, required=True, help="paper.bootstrap")
    t1.add_argument("--seed", type=int, required=True, help="the master seed")
    t2 = sub.add_parser("table2", help="every row of the config's table2")
    t2.add_argument("--config-json", required=True,
                    help="JSON with keys table2, regions, trials, n_folds, bins, bootstrap, seed")
    t2.add_argument("--catalog", required=True)
    t2.add_argument("--ensemble", action="append", default=[], metavar="TRIAL=PATH")
    t2.add_argument("--knn", action="append", default=[], metavar="TRIAL=PATH")
    t2.add_argument("--zone", default=None, help="results/zone/zone.json: its table2_region is the suspect zone removed")
    a1 = sub.add_parser("tableA1", help="layers of the network")
    a1.add_argument("--network-json", required=True, help="networks.full")
    a1.add_argument("--n-bins", type=int, required=True, help="bins.n")
    for s in (t1, t2, a1):
        s.add_argument("--csv", required=True)
        s.add_argument("--tex", required=True)
        s.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    if a.table == "table1":
        ens, _ = read_ensemble(a.ensemble, with_pdf=False)
        log.info("table1 from %s: %d galaxies, %d folds", a.ensemble, len(ens), ens["fold"].nunique())
        _write(table1(ens, a.bootstrap, a.seed), a.csv, a.tex, latex_table1)
    elif a.table == "table2":
        cfg = json.loads(a.config_json)
        if a.zone:
            with open(a.zone) as fh:
                cfg["regions"] = {**cfg["regions"], "suspect_region": json.load(fh)["table2_region"]}
        ens_paths, knn_paths = parse_pairs(a.ensemble, "ensemble"), parse_pairs(a.knn, "knn")
        ensembles = {}
        for t, path in ens_paths.items():
            ensembles[t] = read_ensemble(path)
            log.info("read %s: %d galaxies", path, len(ensembles[t][0]))
        knn = {t: pd.read_parquet(path, columns=["specObjID", "z_phot"]) for t, path in knn_paths.items()}
        cat = read_catalog(a.catalog, CATALOG_COLUMNS + ("fold",))
        b = cfg["bins"]
        preds = TrialPredictions(ensembles, knn, ensemble_names=ens_paths, knn_names=knn_paths)
        df = table2(cfg["table2"], preds, cat, cfg, bin_edges=zbins.edges(b["n"], b["z_min"], b["z_max"]),
                    catalog_name=a.catalog)
        from photoz.latex import relabel_b16

        df["label"] = [relabel_b16(v, cfg["mode"]) for v in df["label"]]
        _write(df, a.csv, a.tex, latex_table2)
    else:
        df = tableA1(json.loads(a.network_json), n_bins=a.n_bins)
        log.info("tableA1: total %s parameters", df.loc[df["stage"] == "total", "params"].iloc[0])
        _write(df, a.csv, a.tex, latex_tableA1)
    return 0
