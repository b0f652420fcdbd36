"""Sentences of the paper that compare numbers, chosen by the numbers.

Nothing in ``paper/ms.tex`` says "lower", "agree" or "recovered" by itself:
each such word or sentence is a macro written here from the run's results, so
a run with other results gets other words. :func:`macros` returns them;
``photoz.paper.collect`` adds them to ``results/paper/variables.tex``.

Rules of the comparisons (``K_SIGMA`` = 2):

* two measured values ``a ± ea`` and ``b ± eb``: ``a`` is *lower* or *higher*
  when ``|a − b| > K_SIGMA * sqrt(ea² + eb²)``; they are *consistent* only
  when the whole interval ``|a − b| + K_SIGMA * sqrt(ea² + eb²)`` lies within
  the equivalence margin (``EQUIV_REL`` = 5 % of ``b``, or a given absolute
  margin); otherwise the errors are too wide to tell (a fourth word, e.g.
  "not measured precisely enough to be told from"), as they are when an
  error is missing (:func:`compare`). A published value has no error here,
  so only ours counts. Every outcome can happen: no sentence follows from a
  difference merely not being significant;
* the folds of Table 1 *agree* when the χ² of their σ_MAD about the mean, in
  units of their bootstrap errors, has a p-value >= ``P_AGREE`` for
  ``n − 1`` degrees of freedom (:func:`folds_agree`);
* sample sizes are compared as orders of magnitude (:func:`size_words`);
* on the learning curve, the CNN's σ_MAD is *lower* or *higher* than the
  kNN's when their ratio differs from 1 by more than ``K_SIGMA`` times its
  paired bootstrap error (:func:`learning_curve_end`), and one σ_MAD *falls
  faster* with the training size when the log-log slopes differ by more
  than ``K_SIGMA`` combined errors (:func:`learning_curve_slopes`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd


class PaperInputError(ValueError):
    """A result file the paper needs is missing or malformed (raised here and by :mod:`photoz.paper`)."""


__all__ = ["PaperInputError", "K_SIGMA", "P_AGREE", "EQUIV_REL", "SLOPE_MARGIN", "REMOVED_FRACTION", "CANNOT_TELL", "compare", "folds_agree", "size_words", "zone_sentence",
           "validation_sentence", "learning_curve_end", "learning_curve_slopes", "swarp_check_sentence",
           "resampler_macros", "TREND_SIGMA", "ebv_trend_sentence", "ebv_trend", "macros"]

K_SIGMA = 2.0
P_AGREE = 0.01
#: Equivalence margin of :func:`compare`: two values are *consistent* when their difference is shown
#: (at K_SIGMA) to lie within this fraction of the reference value.
EQUIV_REL = 0.05
#: Equivalence margin of two log-log slopes of the learning curve (d log sigma_MAD / d log N).
SLOPE_MARGIN = 0.05
#: A trend is *removed* (or *gone at fixed brightness*) when the remaining slope is shown (at K_SIGMA)
#: to be below this fraction of the trend it is compared with.
REMOVED_FRACTION = 0.25
#: The fourth word of :func:`compare`'s default words: the errors are too wide to tell.
CANNOT_TELL = "not measured precisely enough to be told from"


def _num(x):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def compare(a, b, a_err=0.0, b_err=0.0, words=("lower than", "consistent with", "higher than", CANNOT_TELL),
            margin=None):
    """The word for ``a`` against ``b``: lower, consistent, higher, or cannot tell (``words[0..3]``).

    ``a`` is lower (higher) when ``b − a`` (``a − b``) exceeds ``K_SIGMA *
    hypot(a_err, b_err)``; consistent when ``|a − b| + K_SIGMA * hypot(...)``
    is at most ``margin`` (default ``EQUIV_REL * |b|``); otherwise, or when an
    error is missing (None, NaN), the errors are too wide to tell. A
    three-word ``words`` gets :data:`CANNOT_TELL` as its fourth. Returns
    ``None`` when a value is missing.
    """
    a, b = _num(a), _num(b)
    if a is None or b is None:
        return None
    words = tuple(words) + ((CANNOT_TELL,) if len(words) == 3 else ())
    ea, eb = _num(a_err), _num(b_err)
    if ea is None or eb is None:
        return words[3]
    tol = K_SIGMA * math.hypot(ea, eb)
    d = a - b
    if d < -tol:
        return words[0]
    if d > tol:
        return words[2]
    margin = EQUIV_REL * abs(b) if margin is None else margin
    return words[1] if abs(d) + tol <= margin else words[3]


def folds_agree(values, errors):
    """(agree: bool, chi2, dof) of fold values about their mean in units of their errors."""
    from scipy.stats import chi2 as chi2_dist

    pairs = [(_num(v), _num(e)) for v, e in zip(values, errors)]
    pairs = [(v, e) for v, e in pairs if v is not None and e]
    if len(pairs) < 2:
        return None, float("nan"), 0
    w = [1 / e**2 for _, e in pairs]
    mean = sum(v * wi for (v, _), wi in zip(pairs, w)) / sum(w)
    chi2 = sum(((v - mean) / e) ** 2 for v, e in pairs)
    dof = len(pairs) - 1
    return bool(chi2_dist.sf(chi2, dof) >= P_AGREE), chi2, dof


def size_words(ours, theirs):
    """How our sample size compares with theirs: "two orders of magnitude smaller than", ..."""
    ours, theirs = _num(ours), _num(theirs)
    if not ours or not theirs:
        return "of unknown size compared with"
    f = theirs / ours
    if f >= 10:
        n = int(math.floor(math.log10(f)))
        names = {1: "an order", 2: "two orders", 3: "three orders", 4: "four orders", 5: "five orders"}
        return f"{names.get(n, f'{n} orders')} of magnitude smaller than"
    if f >= 1.5:
        return f"{f:.1f} times smaller than"
    if f > 1 / 1.5:
        return "about as large as"
    return f"{1 / f:.1f} times larger than"


def _f(x, spec=".5f"):
    from photoz.latex import number

    return number(x, "bias") if spec == ".5f" else (f"{x:{spec}}" if _num(x) is not None else "--")


def zone_sentence(z):
    """What the suspect-zone search did and found (``results/zone/zone.json``)."""
    c = z.get("controls") or {}
    ctrl = ("$\\dz$ is first fitted by least squares against $E(B-V)$, the observed $r$ magnitude and a cubic in "
            f"$z_{{\\rm spec}}$ on the {count_(c.get('n_fit'))} test galaxies with $|\\dz| \\le 0.05$ "
            f"(slopes {_f(c.get('ebv'), '+.4f')} per magnitude of $E(B-V)$ and {_f(c.get('mag'), '+.4f')} per magnitude "
            "of $r$), so that neither reddening, brightness nor redshift can make a zone. ")
    if not z.get("n_cells_tested"):
        return ctrl + (f"No HEALPix cell (nside {z['nside']}) holds the {z['min_galaxies']} test galaxies a cell needs "
                       "to be tested, so no zone can be found.")
    tau = z.get("field_scatter")
    if tau is None:
        fields = ""
    elif not tau:
        fields = ("The mean residuals of SDSS fields, whose observing conditions differ, scatter no more than their "
                  "galaxies' noise allows here, so no field-to-field term enters the statistics. ")
    else:
        fields = ("Observing conditions differ from one SDSS field to the next, and here the fields' mean residuals "
                  f"scatter by {_f(tau, '.4f')} in $\\dz$ beyond their galaxies' noise (the robust spread of the "
                  "field means less their median sampling error). That scatter enters the variance of every cell's "
                  "and zone's mean in proportion to how its galaxies spread over fields, so that a zone must stand "
                  "out from the map's ordinary field-to-field variation. ")
    test = ctrl + fields + (f"Each HEALPix cell (nside {z['nside']}) with at least {z['min_galaxies']} of them gets a Welch "
                   "statistic of its mean residual against all other galaxies; a zone is a connected set of cells past "
                   f"$|Z| = {z['grow_z']:g}$ with one sign, one of them past {z['seed_z']:g}, and it is found when its "
                   f"$|Z|$ exceeds {z['threshold_z']:.2f}, the {100 * (1 - z['alpha']):g}th percentile of the largest "
                   f"zone $|Z|$ in {count_(z['n_permutations'])} maps with the residuals permuted over the galaxies (a "
                   f"family-wise level of {z['alpha']:g}).")
    if not z["found"]:
        n = z["n_candidate_zones"]
        return test + (f" No zone passes (largest zone $|Z|$ = {z['max_abs_z']:.2f}, {n} "
                       f"candidate{'s' if n != 1 else ''}): this run finds no suspect zone.")
    parts = []
    for zd in z["zones"]:
        b = zd["bounds"]
        parts.append(f"{len(zd['cells'])} cell{'s' if len(zd['cells']) != 1 else ''} at RA {b['ra_min']:.2f} to "
                     f"{b['ra_max']:.2f}, Dec {b['dec_min']:.2f} to {b['dec_max']:.2f} ($Z = {zd['z']:+.1f}$, "
                     f"{count_(zd['n'])} galaxies, bias {_f(zd['bias'])} $\\pm$ {_f(zd['bias_se'])})")
    n = len(z["zones"])
    return test + (f" {'One zone passes' if n == 1 else f'{n} zones pass'}: " + "; ".join(parts)
                   + f"; the rest of the test sample has a bias of {_f(z['bias_out'])} $\\pm$ {_f(z['bias_out_se'])}.")


def count_(x):
    from photoz.latex import count

    return count(x) if _num(x) is not None else "--"


def table2_zone_sentence(z):
    """Which region Table 2's "suspect zone removed" row removes, and (mode sdss) the configured cross-check."""
    reg = z["table2_region"]
    within = reg.get("within")
    if not reg.get("cells"):
        text = ("The ``suspect zone removed'' row of Table~\\ref{tab:t2} therefore removes nothing"
                + (" (no zone was found within " + _describe(within) + ")." if within and z["found"] else "."))
    elif within:
        text = ("The ``suspect zone removed'' row of Table~\\ref{tab:t2} removes the zones found within "
                + _describe(within) + ", where the paper places its zone.")
    else:
        text = "The ``suspect zone removed'' row of Table~\\ref{tab:t2} removes the zones found."
    cc = z.get("cross_check")
    if cc:
        text += (f" As a cross-check, the region this project estimated for the paper's zone before searching "
                 f"({_describe(cc['region']) if cc.get('region') else tex_(cc['description'])}) holds {count_(cc['n_in'])} test galaxies with a bias of "
                 f"{_f(cc['bias_in'])} $\\pm$ {_f(cc['bias_in_se'])} against {_f(cc['bias_out'])} outside; "
                 + (f"{count_(cc['n_both'])} of them lie in the zone removed (Jaccard index {cc['jaccard']:.2f})."
                    if _num(cc.get("jaccard")) is not None else "no galaxy lies in either."))
    return text


def _describe(region):
    from photoz.regions import describe_region

    return tex_(describe_region(region)).replace("<=", "$\\le$")


def tex_(s):
    from photoz.latex import escape

    return escape(s)


def validation_sentence(v, injected_mag=None, injected_band=None):
    """Whether the search recovered the injected fault (mock only; ``results/zone/validation.json``)."""
    kind = (f"a zero-point error of {injected_mag:g}\\,mag in the ${injected_band}$ band of the images served for "
            "the frames of one patch of sky, not in the catalogue's photometry"
            if injected_band and _num(injected_mag) is not None else
            "a grey calibration error" + (f" of {injected_mag:g}\\,mag" if _num(injected_mag) is not None else "")
            + " in the frames of one patch of sky")
    what = f"The mock injects {kind}; it is recorded in the truth table only, which the search never reads."
    if _num(v.get("z_injected")) is not None:
        ratio = (f", {abs(v['bias_ratio']):.0f} times the rest's {_f(v['bias_rest'])}"
                 if _num(v.get("bias_ratio")) is not None and v["bias_ratio"] >= 1 else
                 f" against the rest's {_f(v['bias_rest'])}")
        inj = (f"measured from the truth, its {count_(v['n_injected'])} test galaxies have a bias of "
               f"{_f(v['bias_injected'])} $\\pm$ {_f(v['bias_injected_se'])}{ratio} ($Z = {v['z_injected']:.1f}$; "
               f"the paper's zone, $Z \\approx 9$ on 1\\,807 galaxies, would give $Z \\approx "
               f"{v['z_paper_scaled']:.1f}$ on as many)")
    else:
        inj = f"the injected zone holds {v['n_injected']} test galaxies"
    reason = v["reason"]
    if reason == "recovered":
        return what + (f" The search recovered it and found nothing else: the zone found holds "
                       f"{100 * v['recall']:.0f}\\,\\% of the injected zone's test galaxies (Jaccard index "
                       f"{v['jaccard']:.2f}, recovery needs {v['recovery_jaccard']:g}) and its bias has the same sign; "
                       f"{inj}.")
    if reason == "nothing_found" and _num(v.get("threshold_z")) is None:
        return what + f" The search could not recover it: no cell had enough test galaxies to be tested; {inj}."
    if reason == "nothing_found":
        return what + f" The search did not recover it: no zone passed the threshold; {inj}."
    if reason == "low_overlap":
        # say which side the overlap fails on: the injected galaxies missed (recall), or the found
        # zones' galaxies outside it (precision; cells larger than the zone spill over its edges)
        return what + (f" The search did not recover it: the zones found hold {100 * v['recall']:.0f}\\,\\% of "
                       f"the injected zone's test galaxies, and {100 * (1 - v['precision']):.0f}\\,\\% of their own "
                       f"lie outside it (Jaccard index {v['jaccard']:.2f}, recovery needs "
                       f"{v['recovery_jaccard']:g}); {inj}.")
    if reason == "opposite_sign":
        return what + (f" The search did not recover it: the zones found overlap the injected one (Jaccard index "
                       f"{v['jaccard']:.2f}) but their bias has the opposite sign; {inj}.")
    if reason == "spurious_zone":
        return what + (f" The search found it (Jaccard index {v['jaccard']:.2f}) but also "
                       f"{v['n_spurious_zones']} zone(s) where nothing was injected, so it does not count as "
                       f"recovered; {inj}.")
    return what + " The search could not be checked: no test galaxy lies in the injected zone."


def learning_curve_end(ratio, ratio_err, n_train, end="largest"):
    """The CNN against the kNN at one end of the learning curve, from σ_MAD(CNN)/σ_MAD(kNN).

    ``n_train`` is the (LaTeX-formatted) training size, ``end`` ``smallest`` or ``largest``.
    """
    r, e = _num(ratio), _num(ratio_err)
    at = f"At the {end} training set ({n_train} galaxies)"
    if r is None:
        return at + " the CNN and the kNN are not compared (missing value)."
    word = compare(r, 1.0, e, 0.0, ("lower than", "as low as", "higher than", "cannot tell"))
    value = f"${r:.3f}\\pm{e:.3f}$" if e is not None else f"{r:.3f}"
    if word == "cannot tell":
        why = ("its error could not be measured" if e is None else
               f"$1$ lies within {K_SIGMA:g} errors but so do ratios beyond $1\\pm{EQUIV_REL:g}$")
        return f"{at} we cannot tell whether the CNN's $\\smad$ is lower than the kNN's (ratio {value}; {why})."
    if word == "as low as":
        return (f"{at} the CNN's $\\smad$ is as low as the kNN's within {100 * EQUIV_REL:g}\\,\\% "
                f"(ratio {value}).")
    return f"{at} the CNN's $\\smad$ is {word} the kNN's (ratio {value})."


def learning_curve_slopes(cnn, cnn_err, knn, knn_err):
    """Which σ_MAD falls faster with the training size: the log-log slopes of the CNN and the kNN.

    Both slopes negative: the CNN's curve *falls faster than*, *falls as fast
    as* or *falls more slowly than* the kNN's; otherwise the signs are said.
    """
    a, ea, b, eb = _num(cnn), _num(cnn_err), _num(knn), _num(knn_err)
    if a is None or b is None:
        return "The slopes of the two curves are not compared (fewer than two points)."

    def s(x, e):
        return f"${x:.3f}" + (f" \\pm {e:.3f}$" if e is not None else "$")

    slopes = f"(slopes $\\mathrm{{d}}\\log\\smad/\\mathrm{{d}}\\log N$ of {s(a, ea)} and {s(b, eb)})"
    if a < 0 and b < 0:
        word = compare(a, b, ea, eb, ("falls faster", "falls as fast", "falls more slowly", "cannot tell"),
                       margin=SLOPE_MARGIN)
        if word == "cannot tell":
            return ("With these errors we cannot tell whether the CNN's $\\smad$ falls faster or more slowly with "
                    f"the training size than the kNN's {slopes}.")
        than = "as" if word == "falls as fast" else "than"
        within = f" (within {SLOPE_MARGIN:g})" if word == "falls as fast" else ""
        return f"The CNN's $\\smad$ {word}{within} with the training size {than} the kNN's {slopes}."

    def trend(x):
        return "falls" if x < 0 else ("rises" if x > 0 else "stays flat")
    return f"The CNN's $\\smad$ {trend(a)} with the training size and the kNN's {trend(b)} {slopes}."


#: |slope| / error above which a trend of the bias is called significant.
TREND_SIGMA = 3.0


def _significant(fit):
    """A slope ``(b, e)`` more than :data:`TREND_SIGMA` errors from zero."""
    b, e = _num(fit[0]), _num(fit[1])
    return b is not None and e is not None and e > 0 and abs(b) > TREND_SIGMA * e


def _say_slope(fit):
    """A slope against E(B-V) in words: none, not significant, or a rising/falling bias."""
    b, e = _num(fit[0]), _num(fit[1])
    if b is None:
        return "no measurable slope"
    value = f"slope ${b:+.3f}" + (f" \\pm {e:.3f}$" if e is not None else "$")
    if not _significant(fit):
        return f"no significant trend ({value})"
    return f"a bias that {'rises' if b > 0 else 'falls'} with $E(B-V)$ ({value}, {abs(b) / e:.0f}$\\sigma$)"


def _shown_below(fit, ref):
    """``fit``'s slope shown (K_SIGMA) to be under REMOVED_FRACTION of ``|ref|``."""
    x, ex = _num(fit[0]), _num(fit[1])
    return x is not None and ex is not None and abs(x) + K_SIGMA * ex <= REMOVED_FRACTION * abs(ref)


def _input_effect(with_fit, without_fit):
    """What the reddening input does to the trend: ``(words, final)``; ``final`` when no trend is shown."""
    w, wo = _significant(with_fit), _significant(without_fit)
    b, e = _num(with_fit[0]), _num(with_fit[1])
    b0, e0 = _num(without_fit[0]), _num(without_fit[1])
    if wo and not w:
        if _shown_below(with_fit, b0):
            return (f": the input removes the trend (what is left is shown to be under {100 * REMOVED_FRACTION:.0f}\\% "
                    "of the slope without it), as in the paper."), False
        return (f": with these errors we cannot tell whether the input removes the trend (the slope with it is "
                f"not significant, but slopes up to {100 * REMOVED_FRACTION:.0f}\\% of the one without it are not "
                "excluded either)."), False
    if wo and w:
        # the same galaxies in both fits: their errors are positively correlated, so
        # adding them in quadrature overstates the error of the difference (conservative)
        if b * b0 > 0 and abs(b0) - abs(b) > TREND_SIGMA * float(np.hypot(e, e0)):
            return (f": the input reduces the trend to {100 * abs(b) / abs(b0):.0f}\\% of the slope without it "
                    "but does not remove it, which the paper found it does."), False
        return ": the input does not remove the trend, which the paper found it does.", False
    if w:
        return ": a trend the paper did not find with the input.", False
    bound = max((abs(_num(f[0])) + K_SIGMA * _num(f[1]) for f in (with_fit, without_fit)
                 if _num(f[0]) is not None and _num(f[1]) is not None), default=None)
    return (": neither shows a significant trend" + (
        f"; with these errors slopes up to ${bound:.3f}$ per magnitude are not excluded, so we cannot tell whether "
        "the trend the paper found without the input is present." if bound is not None else ".")), True


def _brightness_words(with_fit, without_fit, fixed_brightness):
    """Whether each network's trend is one of colour or of brightness, from the slopes at fixed brightness."""
    fb_with, fb_without = fixed_brightness
    trended = [(name, fit, _num(raw[0])) for name, raw, fit in (("without the input", without_fit, fb_without),
                                                                 ("with it", with_fit, fb_with)) if _significant(raw)]
    text = (f" At fixed $z_{{\\rm spec}}$ and fixed observed $r$ magnitude the $E(B-V)$ term is "
            f"${_num(fb_without[0]):+.3f} \\pm {_num(fb_without[1]):.3f}$ without the input and "
            f"${_num(fb_with[0]):+.3f} \\pm {_num(fb_with[1]):.3f}$ with it")
    kinds = ["colour" if _significant(fit) else ("brightness" if _shown_below(fit, raw) else "unknown")
             for _, fit, raw in trended]
    if all(k == "brightness" for k in kinds):
        return text + (": the trend is one of brightness, not of colour (what is left at fixed brightness is shown to be "
                       f"under {100 * REMOVED_FRACTION:.0f}\\% of it; reddened galaxies are fainter in the images, "
                       "the sample being cut on dereddened $r$).")
    if all(k == "colour" for k in kinds):
        return text + ": the trend is one of colour, as it remains at fixed brightness."
    if "unknown" in kinds:
        return text + (": with these errors we cannot tell whether the trend is one of colour or of brightness (the "
                       "term at fixed brightness is not significant, but neither is it shown to be under "
                       f"{100 * REMOVED_FRACTION:.0f}\\% of the trend).")
    colour = [name for (name, _, _), k in zip(trended, kinds) if k == "colour"]
    return text + f": the trend of the network {colour[0]} is one of colour, the other's one of brightness."


def ebv_trend_sentence(with_fit, without_fit, ebv_range, n, fixed_brightness=None):
    """What the bias does against E(B-V) with and without the reddening input (Fig. 11), words chosen by the numbers.

    ``with_fit`` / ``without_fit``: ``(slope, error)`` of Δz against E(B-V)
    (:func:`photoz.metrics.bias_slope`); a slope is a *trend* when it is more
    than :data:`TREND_SIGMA` errors from zero, and the input *reduces* it when
    both are trends of the same sign and they differ by more than
    :data:`TREND_SIGMA` errors added in quadrature. ``ebv_range``: the 5th and 95th
    percentiles of the test galaxies' E(B-V); ``n``: the galaxies in the fits.
    ``fixed_brightness``: ``(with, without)``, the same slopes at fixed z_spec
    and fixed *observed* r (:func:`photoz.metrics.partial_slope`); where given
    and a network shows a trend, a second sentence says whether its trend is
    one of colour (a term left at fixed brightness) or of brightness (none left:
    reddened galaxies are fainter in the images).
    """
    from photoz.latex import count
    from photoz.metrics import OUTLIER_THRESHOLD

    lo, hi = ebv_range
    text = (f"Against $E(B-V)$ (Fig.~\\ref{{fig:ebv}}; the {count(n)} fold-0 test galaxies with "
            f"$|\\dz| \\le {OUTLIER_THRESHOLD:g}$, $E(B-V)$ from {lo:.3f} to {hi:.3f} between its 5th and 95th percentiles; "
            f"slopes $\\mathrm{{d}}\\langle\\dz\\rangle/\\mathrm{{d}}E(B-V)$ per magnitude) the network without "
            f"the reddening input shows {_say_slope(without_fit)}, and the one with it {_say_slope(with_fit)}")
    words, final = _input_effect(with_fit, without_fit)
    text += words
    if final or fixed_brightness is None or any(_num(v) is None for fit in fixed_brightness for v in fit):
        return text
    return text + _brightness_words(with_fit, without_fit, fixed_brightness)


def ebv_trend(paths, cfg):
    """``EbvTrend``: :func:`ebv_trend_sentence` on the main and no-E(B-V) ensembles' common fold-0 test galaxies.

    Empty without a no-E(B-V) trial (:func:`photoz.trials.noebv_trial`) or its ensemble.
    """
    from photoz import metrics, trials
    if trials.noebv_trial(cfg) is None or not paths.get("ensemble") or not paths.get("ensemble_noebv"):
        return ""
    cols = ["specObjID", "fold", "z_spec", "z_phot"]
    frames = {}
    for key in ("ensemble", "ensemble_noebv", "catalog"):
        p = Path(paths[key])
        if not p.exists():
            raise PaperInputError(f"result file {p} does not exist")
        frames[key] = pd.read_parquet(p, columns=cols if key != "catalog" else
                                      ["specObjID", "ebv", "dered_petro_r", "extinction_r"])
    main = frames["ensemble"][frames["ensemble"]["fold"] == 0].drop(columns="fold")
    df = main.merge(frames["ensemble_noebv"].drop(columns="fold"), on="specObjID", suffixes=("", "_noebv"))
    df = df.merge(frames["catalog"], on="specObjID", how="left")
    if df.empty:
        raise PaperInputError(f"{paths['ensemble']} (fold 0) and {paths['ensemble_noebv']} share no test galaxy")
    if df["ebv"].isna().any():
        raise PaperInputError(f"{int(df['ebv'].isna().sum())} test galaxies of {paths['ensemble']} have no E(B-V) "
                              f"in {paths['catalog']}")
    ebv = df["ebv"].to_numpy()
    dz_with = metrics.delta_z(df["z_phot"], df["z_spec"])
    dz_without = metrics.delta_z(df["z_phot_noebv"], df["z_spec"])
    fit_with = metrics.bias_slope(ebv, dz_with)
    fit_without = metrics.bias_slope(ebv, dz_without)
    # held fixed: z_spec and the r magnitude the images show (dereddened + extinction)
    z_spec, r_obs = df["z_spec"].to_numpy(), (df["dered_petro_r"] + df["extinction_r"]).to_numpy()
    fixed = tuple(metrics.slope_at_fixed_z(ebv, dz, z_spec, r_obs)[:2] for dz in (dz_with, dz_without))
    lo, hi = np.percentile(ebv, [5, 95])
    return ebv_trend_sentence(fit_with[:2], fit_without[:2], (lo, hi), min(fit_with[2], fit_without[2]), fixed)


def _sig(x, digits=2):
    """``x`` >= 0 to ``digits`` significant digits, in LaTeX (``$1.8\\times10^{-5}$`` below 0.001)."""
    x = _num(x)
    if x is None:
        return "--"
    x = float(f"{x:.{digits - 1}e}")  # rounded first: 9.96 -> 10, not 10.0
    if x == 0:
        return "0"
    e = int(math.floor(math.log10(abs(x))))
    if e < -3:
        m = x / 10**e
        return f"${m:.{digits - 1}f}\\times10^{{{e}}}$"
    return f"{x:.{max(0, digits - 1 - e)}f}"


def swarp_check_sentence(check, pixel_scale):
    """What the SWarp check of a native run found (``results/cutouts/swarp_check.json``), words chosen by the numbers.

    The two resamplers *agree* when the 95th percentile of ``|native - SWarp| / sigma``
    is below ``check["agree_sigma"]`` (``photoz.cutouts.swarp_check.AGREE_SIGMA``) in every band.
    """
    from photoz.latex import count

    drawn = (f"{count(check['n_drawn'])} galaxies drawn at random (seeded by the master seed) among the "
             f"{count(check['n_pool'])} with a cube were remade with SWarp \\citep{{bertin2002}} (version "
             f"\\VersionSwarp) from the same frames and compared with the cubes of the run")
    fails = check["n_failed"]
    if check["n_compared"] == 0:
        return (f"To check it, {drawn}; SWarp lost all of them ({count(fails)} galaxies), so this run's native "
                "cubes are not checked against SWarp.")
    lost = (f"; SWarp lost {count(fails)} of them, listed with their reasons in "
            "\\texttt{results/cutouts/swarp\\_check.json}" if fails else "; SWarp lost none of them")
    bands = check["bands"]
    agree = check["worst_p95_abs_diff_sigma"] is not None and check["worst_p95_abs_diff_sigma"] < check["agree_sigma"]
    words = ("They agree well within the noise" if agree else
             f"They differ by more than {check['agree_sigma']:g} times the noise in some band")
    text = (f"To check it, {drawn}{lost}. {words}: per pixel, the median $|{{\\rm native}} - {{\\rm SWarp}}|$ is at "
            f"most {_sig(check['worst_median_abs_diff_sigma'])} and its 95th percentile at most "
            f"{_sig(check['worst_p95_abs_diff_sigma'])} times the noise of the cube in every band (the noise of "
            f"each cube and band measured as 1.4826 times the median absolute deviation of its pixels more than "
            f"{check['background_radius_pix']:g} pixels from the centre)")
    nr = [v["n_flux_ratio"] for v in bands.values()]
    ap = check["aperture_radius_pix"] * float(pixel_scale)
    if max(nr) == 0:
        return text + (f"; no galaxy has a signal-to-noise ratio of {check['ratio_min_snr']:g} within "
                       f"{ap:.1f}\\,arcsec of its centre, so no flux ratio is measured.")
    dev = check["worst_abs_flux_ratio_minus_1"]
    span = count(min(nr)) if min(nr) == max(nr) else f"{count(min(nr))} to {count(max(nr))}"
    return text + (f"; the median ratio of the fluxes within {ap:.1f}\\,arcsec of the centre (native over SWarp) "
                   f"differs from 1 by at most {_sig(100 * dev)}\\,\\% in every band (over the {span} galaxies per "
                   f"band with a signal-to-noise ratio of at least {check['ratio_min_snr']:g} in that aperture).")


def resampler_macros(paths, cfg):
    """``ResamplerSentence`` (which resampler made the cutouts and, for the native one, its check against SWarp)
    and the check's numbers ``SwarpCheck*`` (``--`` without a check).

    Reads ``paths["swarp_check"]`` only when the config schedules the check
    (``cutouts.resampler`` native and ``cutouts.swarp_check_galaxies`` > 0).
    """
    cut = cfg["cutouts"]
    m = {"SwarpCheckNCompared": "--", "SwarpCheckNFailed": "--", "SwarpCheckMedianSigma": "--",
         "SwarpCheckPninetyfiveSigma": "--", "SwarpCheckFluxRatioPercent": "--"}
    if cut["resampler"] == "swarp":
        m["ResamplerSentence"] = ("The cutouts were made with SWarp \\citep{bertin2002} (version \\VersionSwarp; "
                                  "Lanczos-3 resampling, median of the epochs).")
        return m
    native = ("The cutouts of this run were made with the package's native resampler, a numpy implementation of "
              "SWarp's Lanczos-3 resampling and median of the epochs.")
    n = int(cut["swarp_check_galaxies"])
    if n <= 0:
        m["ResamplerSentence"] = native + (" This run did not check it against SWarp "
                                           "(\\texttt{cutouts.swarp\\_check\\_galaxies} is 0).")
        return m
    if "swarp_check" not in paths or paths["swarp_check"] is None:
        raise ValueError("paper variables: cutouts.resampler native with cutouts.swarp_check_galaxies > 0 needs the "
                         "SWarp check (--swarp_check results/cutouts/swarp_check.json)")
    check = _read_json(paths["swarp_check"])
    try:
        m["ResamplerSentence"] = native + " " + swarp_check_sentence(check, cut["pixel_scale"])
        from photoz.latex import count

        m["SwarpCheckNCompared"] = count(check["n_compared"])
        m["SwarpCheckNFailed"] = count(check["n_failed"])
        m["SwarpCheckMedianSigma"] = _sig(check["worst_median_abs_diff_sigma"])
        m["SwarpCheckPninetyfiveSigma"] = _sig(check["worst_p95_abs_diff_sigma"])
        dev = check["worst_abs_flux_ratio_minus_1"]
        m["SwarpCheckFluxRatioPercent"] = "--" if dev is None else _sig(100 * dev)
    except (KeyError, TypeError) as err:
        raise PaperInputError(f"{paths['swarp_check']}: malformed SWarp check ({type(err).__name__}: {err})") from None
    return m


def _read_json(path):
    path = Path(path)
    if not path.exists():
        raise PaperInputError(f"result file {path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise PaperInputError(f"{path} is not valid JSON: {err}") from None


def comparison_rule(main, n_bootstrap):
    """How the text compares two numbers, with the errors described as Table 2 computes them (``main``: its CNN row)."""
    folds = main is not None and str(main.get("errors", "")) == "folds"
    nf = int(main.get("n_folds", 1)) if main is not None and _num(main.get("n_folds")) else 1
    errs = ((f"for the rows averaged over the {nf} folds, the standard deviation of the fold values (the scatter of "
             f"one fold's value, not the error of their mean); for one-split rows, the standard deviation over "
             f"{n_bootstrap} bootstrap resamples of the test galaxies") if folds else
            f"the standard deviation over {n_bootstrap} bootstrap resamples of the test galaxies")
    return (f"a value is called lower or higher than another when they differ by more than {K_SIGMA:g} times their "
            f"errors added in quadrature (the errors of Table~\\ref{{tab:t2}}: {errs}; two estimators scored on the "
            "same galaxies have correlated errors, so adding them in quadrature overstates the error of the "
            f"difference), consistent with it when the difference, widened by {K_SIGMA:g} such errors, stays within "
            f"{100 * EQUIV_REL:g}\\,\\% of it, and not measured precisely enough to be told from it otherwise; "
            "published values carry no error here")


def knn_training(main, knn, predict_from="best"):
    """What the kNN trains on, with the counts of Table 2's rows (CNN ``main``, kNN ``knn``); ``predict_from``
    (``training.predict_from``) says what the CNN's validation subset is used for."""
    from photoz.latex import count

    n_cnn = count(main.get("n_train")) if main is not None and _num(main.get("n_train")) else "--"
    n_knn = count(knn.get("n_train")) if knn is not None and _num(knn.get("n_train")) else "--"
    return ("trained on each fold's training side, the CNN's validation subset included: "
            f"{n_knn} galaxies per fold, against the {n_cnn} the CNN fits its weights on ("
            + ("it uses its validation subset only to choose its epoch" if predict_from == "best" else
               "its validation subset only monitors training: the weights it predicts with are fixed in advance") + ")")


def _row(t2, estimator, subset):
    est = t2["estimator"].fillna("cnn") if "estimator" in t2.columns else pd.Series("cnn", index=t2.index)
    sel = (est == estimator) & (t2["subset"].fillna("all") == subset)
    if "remove_widest" in t2.columns:
        sel &= t2["remove_widest"].fillna(0.0).astype(float) == 0.0
    return None if not sel.any() else t2[sel].iloc[0]


def folds_agreement(t1):
    """``FoldsAgreement``: whether Table 1's folds agree within their bootstrap errors, or cannot tell."""
    folds = t1[~t1["fold"].astype(str).isin(["mean", "std"])]
    agree, chi2, dof = folds_agree(folds["sigma_mad"], folds.get("sigma_mad_err", [None] * len(folds)))
    if agree is None:
        return "Table~\\ref{tab:t1} has fewer than two folds with errors, so their agreement is not tested"
    errs = pd.to_numeric(folds.get("sigma_mad_err"), errors="coerce")
    wide = bool(K_SIGMA * np.nanmedian(errs) > EQUIV_REL * np.nanmean(folds["sigma_mad"]))
    if not agree:
        lead = "The folds differ by more than their bootstrap errors"
    elif wide:
        lead = ("The folds do not differ beyond their bootstrap errors, but these are too wide "
                f"(twice the median error exceeds {100 * EQUIV_REL:g}\\,\\% of $\\smad$) to show that they agree")
    else:
        lead = "The folds agree with each other within their bootstrap errors"
    return lead + f" ($\\chi^2 = {chi2:.1f}$ for {dof} degrees of freedom, Table~\\ref{{tab:t1}})"


def comparison_macros(t2, bootstrap, mode, predict_from="best"):
    """The estimators compared on Table 2's rows (CNN, B16, kNN, Stripe 82, the published row); ``predict_from``:
    the run's ``training.predict_from``."""
    from photoz.latex import b16_name

    main, b16, knn = _row(t2, "cnn", "all"), _row(t2, "b16", "all"), _row(t2, "knn", "all")

    def word(a, b, words=("lower than", "consistent with", "higher than")):
        if a is None or b is None:
            return "not compared with (missing row)"
        return compare(a["sigma_mad"], b["sigma_mad"], a.get("sigma_mad_err"), b.get("sigma_mad_err"), words) or \
            "not compared with (missing value)"

    m = {"BsixteenName": b16_name(mode), "ComparisonRule": comparison_rule(main, int(bootstrap)),
         "KnnTraining": knn_training(main, knn, predict_from), "MainVsBsixteen": word(main, b16), "KnnVsBsixteen": word(knn, b16),
         "MainVsKnn": word(main, knn), "SeightytwoVsMain": word(_row(t2, "cnn", "s82"), main)}
    if main is not None:
        m["MainVsPublished"] = compare(main["sigma_mad"], main.get("pub_sigma_mad"), main.get("sigma_mad_err"), 0.0,
                                       ("lower than", "consistent with", "higher than")) or "not compared with"
        m["SampleSizeWords"] = size_words(main.get("n_test"), main.get("pub_n_test"))
    else:
        m["MainVsPublished"] = "not compared with"
        m["SampleSizeWords"] = "of unknown size compared with"
    return m


def params_macros(ta):
    """The network's parameter count (Table A.1) against the paper's text and the published code."""
    from photoz import published

    tot = ta[ta["stage"].astype(str).str.strip().str.startswith("total")]
    ours = int(tot["params"].iloc[0]) if len(tot) else None
    a1 = published.tableA1()
    return {name: "is unknown against" if ours is None else ("agrees with" if ours == int(ref) else "differs from")
            for name, ref in (("ParamsVsCode", a1["total_code"]), ("ParamsVsText", a1["total_paper"]))}


def mock_macros(mock):
    """The mock's own set-up, in numbers (its B16-like training sample, the catalogue's E(B-V) scatter)."""
    from photoz.mock.merge import DEEP_FRACTION, DEEP_R_MAX

    return {"PhotozTrainingSize": f"{int(mock['photoz_training_size']):,}".replace(",", "\\,"),
            "PhotozK": str(int(mock["photoz_k"])), "PhotozDeepPercent": f"{100 * DEEP_FRACTION:.0f}",
            "PhotozDeepRMax": f"{DEEP_R_MAX:g}", "EbvScatterPercent": f"{100 * float(mock['ebv_sfd_scatter']):.0f}"}


def mean_pdf_caption(z):
    """Fig. 13's caption: its curves, the suspect zone's only where Table 2's region holds cells."""
    if z["table2_region"].get("cells"):
        return "Mean PDF, centred on $z_{\\rm spec}$, in the suspect zone found, in Stripe~82 and in the full test sample."
    return ("Mean PDF, centred on $z_{\\rm spec}$, in Stripe~82 and in the full test sample (the search found no "
            "suspect zone to draw).")


def zone_macros(paths, mock, mode):
    """The zone search's sentences, and (unless ``mode`` is sdss) its validation against the injection."""
    z = _read_json(paths["zone"])
    m = {"ZoneSearch": zone_sentence(z), "ZoneTableRow": table2_zone_sentence(z), "ZoneValidation": "",
         "ZoneMeanPdfCaption": mean_pdf_caption(z)}
    if mode != "sdss":
        if "zone_validation" not in paths:
            raise ValueError("paper variables: mode %r needs the zone validation file (--zone_validation)" % mode)
        v = _read_json(paths["zone_validation"])
        m["ZoneValidation"] = validation_sentence(v, mock["suspect_zone_error_mag"], mock["suspect_zone_band"])
    return m


def macros(paths, cfg, mode):
    """Every number-chosen word and sentence of the paper, as ``name -> LaTeX text``.

    ``paths``: the result files by the keys of ``photoz.paper.RESULT_FILES``;
    reads ``table1``, ``table2``, ``tableA1``, ``zone`` and, unless ``mode`` is
    ``sdss``, ``zone_validation``.
    """
    paths = {k: Path(v) for k, v in paths.items()}
    m = {"FoldsAgreement": folds_agreement(pd.read_csv(paths["table1"]))}
    m.update(comparison_macros(pd.read_csv(paths["table2"]), cfg["paper"]["bootstrap"], mode, cfg["training"]["predict_from"]))
    m.update(params_macros(pd.read_csv(paths["tableA1"])))
    m.update(mock_macros(cfg["mock"]))
    m.update(zone_macros(paths, cfg["mock"], mode))
    m.update(resampler_macros(paths, cfg))  # the resampler, and the SWarp check of a native run
    m["EbvTrend"] = ebv_trend(paths, cfg)  # the bias against E(B-V) with and without the reddening input
    return m
