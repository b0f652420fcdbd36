"""Sentences that compare numbers follow the numbers: two result sets with opposite outcomes."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from photoz import paper, wording
from photoz.config import fill_section
from synthetic_results import write_results


def render(tex, macros):
    """ms.tex with every macro of ``macros`` expanded (enough to read the sentences)."""
    for _ in range(3):
        tex = re.sub(r"\\([A-Za-z]+)(\\ )?",
                     lambda mm: macros[mm.group(1)] + (" " if mm.group(2) else "") if mm.group(1) in macros
                     else mm.group(0), tex)
    return re.sub(r"\s+", " ", tex)


def _set_outcome(res, outcome):
    """Rewrite the result files so that every comparison goes one way ("good"), the other ("bad"), or has
    errors too wide to tell ("wide")."""
    good = outcome == "good"
    t2 = pd.read_csv(res / "table2.csv")
    cnn = (t2["estimator"] == "cnn") & (t2["subset"] == "all")
    t2.loc[cnn, "sigma_mad"] = {"good": 0.0090, "bad": 0.0300, "wide": 0.0148}[outcome]
    t2.loc[t2["estimator"] == "b16", "sigma_mad"] = 0.0150
    t2.loc[t2["estimator"] == "knn", "sigma_mad"] = {"good": 0.0151, "bad": 0.0100, "wide": 0.0152}[outcome]
    t2["sigma_mad_err"] = 2e-3 if outcome == "wide" else 2e-4
    t2.to_csv(res / "table2.csv", index=False)
    t1 = pd.read_csv(res / "table1.csv")
    folds = ~t1["fold"].astype(str).isin(["mean", "std"])
    t1.loc[folds, "sigma_mad"] = ([0.009, 0.012, 0.015, 0.009, 0.02] if outcome == "bad"
                                  else [0.0090, 0.0091, 0.0089, 0.0090, 0.0092])
    t1.loc[folds, "sigma_mad_err"] = 2e-3 if outcome == "wide" else 2e-4
    t1.to_csv(res / "table1.csv", index=False)
    z = json.loads((res / "zone" / "zone.json").read_text())
    v = json.loads((res / "zone" / "validation.json").read_text())
    if good:
        b = {"ra_min": 150.3, "ra_max": 150.6, "dec_min": 29.7, "dec_max": 30.3}
        z.update(found=True, cells=[5, 6], bounds=b, n_in=140, bias_in=0.0045, bias_in_se=0.001, bias_out=0.0001,
                 n_zones=1, zones=[{"cells": [5, 6], "z": 7.3, "n": 140, "bias": 0.0045, "bias_se": 0.001,
                                    "bounds": b}])
        z["table2_region"]["cells"] = [5, 6]
        v.update(recovered=True, reason="recovered", recall=0.9, jaccard=0.8, same_sign=True, n_found=150)
    else:
        z.update(found=False, cells=[], bounds=None, n_in=0, bias_in=None, bias_in_se=None, max_abs_z=2.0,
                 n_zones=0, zones=[])
        z["table2_region"]["cells"] = []
        v.update(recovered=False, reason="nothing_found", z_injected=1.2, n_found=0, recall=0.0, jaccard=0.0)
    (res / "zone" / "zone.json").write_text(json.dumps(z))
    (res / "zone" / "validation.json").write_text(json.dumps(v))


EXPECT = {
    "good": ["the CNN's dispersion is lower than that of B16-like (mock)", "The folds agree with each other",
             "The CNN's dispersion is lower than that of B16-like (mock) and lower than our baseline's",
             "gives $\\smad = 0.01510$, consistent with that of B16-like (mock)", "One zone passes",
             "The search recovered it", "removes the zones found"],
    "bad": ["the CNN's dispersion is higher than that of B16-like (mock)",
            "The folds differ by more than their bootstrap errors",
            "The CNN's dispersion is higher than that of B16-like (mock) and higher than our baseline's",
            "gives $\\smad = 0.01000$, lower than that of B16-like (mock)", "this run finds no suspect zone",
            "The search did not recover it: no zone passed the threshold", "therefore removes nothing"],
    "wide": ["the CNN's dispersion is not measured precisely enough to be told from that of B16-like (mock)",
             "too wide (twice the median error exceeds 5\\,\\% of $\\smad$) to show that they agree",
             "gives $\\smad = 0.01520$, not measured precisely enough to be told from that of B16-like (mock)"],
}


@pytest.mark.parametrize("outcome", ["good", "bad", "wide"])
def test_wording_follows_the_numbers(tmp_path, root, default_config, outcome):
    res = write_results(tmp_path, n=300, n_images=4)
    _set_outcome(res, outcome)
    m = paper.collect(res, default_config, data_mode="mock")
    text = render((root / "paper" / "ms.tex").read_text(), m)
    for phrase in EXPECT[outcome]:
        assert phrase in text, phrase
    for other, phrases in EXPECT.items():
        if other != outcome:
            for phrase in phrases[:1]:
                assert phrase not in text, phrase
    # nothing typed remains; no mock sentence names B16 alone
    for typed in ("The folds agree with each other (Table", "Remaining differences have identified causes",
                  "therefore reflect the mock", "trained on exactly the CNN's", "than B16's", "with B16's",
                  "from B16's"):
        assert typed not in text, typed
    assert "trained on each fold's training side, the CNN's validation subset included" in text


def test_compare_and_sizes():
    assert wording.compare(1.0, 2.0) == "lower than"
    assert wording.compare(2.0, 1.0) == "higher than"
    assert wording.compare(1.0, 1.3, 0.1, 0.1) == "lower than"
    # within 2 errors but the errors too wide to show the values equal within 5 %: cannot tell
    assert wording.compare(1.0, 1.2, 0.1, 0.1) == wording.CANNOT_TELL
    assert wording.compare(1.0, 1.01, 0.005, 0.005) == "consistent with"
    assert wording.compare(1.0, 1.01, float("nan"), 0.005) == wording.CANNOT_TELL  # an error missing
    # the same difference, ten times the errors: from "lower" to "cannot tell", never "consistent"
    assert wording.compare(1.0, 1.1, 0.01, 0.01) == "lower than"
    assert wording.compare(1.0, 1.1, 0.1, 0.1) == wording.CANNOT_TELL
    assert wording.compare(None, 1.0) is None
    assert wording.size_words(1000, 103306) == "two orders of magnitude smaller than"
    assert wording.size_words(20000, 103306) == "5.2 times smaller than"
    assert wording.size_words(100000, 103306) == "about as large as"
    agree, chi2, dof = wording.folds_agree([1.0, 1.1, 0.9], [0.1, 0.1, 0.1])
    assert agree and dof == 2 and chi2 == pytest.approx(2.0)
    assert wording.folds_agree([1.0, 2.0, 1.0], [0.1, 0.1, 0.1])[0] is False


def test_zone_sentences_when_nothing_could_be_tested():
    from photoz import zone

    import numpy as np

    rng = np.random.default_rng(0)
    ra, dec, dz = rng.uniform(150, 151, 50), rng.uniform(30, 31, 50), rng.normal(0, 0.02, 50)
    z, _ = zone.detect(ra, dec, dz, fill_section("zone", {"nside": 256, "min_galaxies": 30}))
    z["table2_region"] = zone.table2_region(z)
    z = json.loads(json.dumps(z, default=float).replace("NaN", "null"))
    s = wording.zone_sentence(z)
    assert "so no zone can be found" in s and "exceeds" not in s
    v = zone.validate(z, np.arange(50), ra, dec, dz, np.arange(50), np.arange(50) < 10)
    v["threshold_z"] = None
    assert "no cell had enough test galaxies" in wording.validation_sentence(v, 0.05)
    one_band = wording.validation_sentence(v, 0.04, "g")
    assert ("a zero-point error of 0.04\\,mag in the $g$ band of the images served for the frames of one patch of "
            "sky, not in the catalogue's photometry; it is recorded") in one_band
    assert "a grey calibration error of 0.05\\,mag in the frames of one patch of sky; it" in wording.validation_sentence(v, 0.05)
    assert "removes nothing" in wording.table2_zone_sentence(z)


def test_real_mode_removes_the_zone_found_within_the_stripes_and_reports_the_cross_check(tmp_path, default_config):
    res = write_results(tmp_path, n=300, n_images=4)
    (res / "zone" / "validation.json").unlink()
    z = json.loads((res / "zone" / "zone.json").read_text())
    z["table2_region"] = {"source": "found", "nside": 256, "cells": [], "within": {"stripes": [38, 39]}}
    z["cross_check"] = {"description": "stripes 38-39, -38.5 <= lambda <= -7.5", "n_in": 120, "bias_in": 0.0031,
                        "bias_in_se": 0.0008, "n_out": 5000, "bias_out": 0.0001, "bias_out_se": 0.0002, "n_both": 0,
                        "jaccard": 0.0}
    (res / "zone" / "zone.json").write_text(json.dumps(z))
    m = paper.collect(res, default_config, data_mode="sdss")
    assert m["ZoneValidation"] == ""
    assert "removes nothing" in m["ZoneTableRow"] and "stripes 38-39" in m["ZoneTableRow"]
    assert "As a cross-check" in m["ZoneTableRow"] and "120 test galaxies" in m["ZoneTableRow"]
    assert m["BsixteenName"] == "B16"
    (res / "zone" / "zone.json").unlink()
    with pytest.raises(paper.PaperInputError, match="zone.json"):
        paper.collect(res, default_config, data_mode="sdss")


def test_ebv_trend_sentence_follows_the_slopes():
    s = wording.ebv_trend_sentence((0.001, 0.01), (0.25, 0.02), (0.01, 0.2), 1000)
    assert "without the reddening input shows a bias that rises with $E(B-V)$ (slope $+0.250 \\pm 0.020$, 12" in s
    assert "the one with it no significant trend" in s and s.endswith("the input removes the trend (what is left is "
                                                                      "shown to be under 25\\% of the slope without it), as in the paper.")
    # the same slope without the input, ten times the error with it: "removes" becomes "cannot tell"
    s = wording.ebv_trend_sentence((0.001, 0.05), (0.25, 0.02), (0.01, 0.2), 1000)
    assert "we cannot tell whether the input removes the trend" in s and "removes the trend (what" not in s
    s = wording.ebv_trend_sentence((0.001, 0.05), (0.004, 0.05), (0.015, 0.029), 1000)
    assert s.endswith("so we cannot tell whether the trend the paper found without the input is present.")
    assert "slopes up to $0.104$ per magnitude are not excluded" in s
    s = wording.ebv_trend_sentence((-0.2, 0.02), (0.25, 0.02), (0.01, 0.2), 1000)
    assert "falls with" in s and s.endswith("the input does not remove the trend, which the paper found it does.")
    s = wording.ebv_trend_sentence((0.2, 0.02), (0.0, 0.02), (0.01, 0.2), 1000)
    assert s.endswith("a trend the paper did not find with the input.")
    # both significant: "reduces" only when the difference is itself > TREND_SIGMA errors (in quadrature)
    s = wording.ebv_trend_sentence((0.011, 0.003), (0.028, 0.004), (0.01, 0.2), 1000)
    assert s.endswith("the input reduces the trend to 39\\% of the slope without it but does not remove it, "
                      "which the paper found it does.")
    s = wording.ebv_trend_sentence((0.016, 0.003), (0.028, 0.004), (0.01, 0.2), 1000)  # 0.012 < 3 x 0.005
    assert s.endswith("the input does not remove the trend, which the paper found it does.")
    # the second sentence: colour or brightness, from the slopes at fixed observed r
    fits = (0.012, 0.0035), (0.014, 0.0033), (0.017, 0.25), 4691
    # the mock-science numbers: the terms at fixed brightness are not significant, but their errors are as
    # large as the trend: cannot tell (the earlier wording said "brightness, not colour")
    s = wording.ebv_trend_sentence(*fits, ((0.0009, 0.0028), (0.0006, 0.0030)))
    assert "term is $+0.001 \\pm 0.003$ without the input and $+0.001 \\pm 0.003$ with it" in s
    assert "we cannot tell whether the trend is one of colour or of brightness" in s
    s = wording.ebv_trend_sentence(*fits, ((0.0002, 0.0005), (0.0001, 0.0005)))
    assert s.endswith("the sample being cut on dereddened $r$).") and "one of brightness, not of colour" in s
    assert wording.ebv_trend_sentence(*fits, ((0.011, 0.003), (0.013, 0.003))).endswith(
        "the trend is one of colour, as it remains at fixed brightness.")
    assert wording.ebv_trend_sentence(*fits, ((0.0002, 0.0005), (0.013, 0.003))).endswith(
        "the trend of the network without the input is one of colour, the other's one of brightness.")
    assert wording.ebv_trend_sentence(*fits, ((float("nan"), 0.003), (0.013, 0.003))).endswith("found it does.")
    quiet = wording.ebv_trend_sentence((0.001, 0.05), (0.004, 0.05), (0.015, 0.029), 1000, ((0.0, 0.01), (0.0, 0.01)))
    assert quiet.endswith("is present.") and "fixed observed" not in quiet  # no second sentence


def test_ebv_trend_reads_the_two_ensembles(tmp_path, root, default_config):
    from photoz import trials

    assert trials.noebv_trial(default_config) == "noebv"
    res = write_results(tmp_path, n=300, n_images=4)  # noebv: dz shifted by 0.3 x (E(B-V) - mean)
    m = paper.collect(res, default_config, data_mode="mock")
    assert "removes the trend" in m["EbvTrend"]
    # the synthetic noebv shift is in z_phot, not in brightness: it stays at fixed observed r
    assert m["EbvTrend"].endswith("the trend is one of colour, as it remains at fixed brightness.")
    slope = float(re.search(r"without the reddening input shows a bias that rises with \$E\(B-V\)\$ \(slope \$([-+.0-9]+)",
                            m["EbvTrend"]).group(1))
    assert 0.2 < slope < 0.35  # 0.3 in z_phot, over (1 + z) in dz
    assert "\\EbvTrend" in (root / "paper" / "ms.tex").read_text()
    (res / "ensemble" / "noebv.parquet").write_bytes((res / "ensemble" / "main.parquet").read_bytes())
    assert "neither shows" in paper.collect(res, default_config, data_mode="mock")["EbvTrend"]
    (res / "ensemble" / "noebv.parquet").unlink()
    with pytest.raises(paper.PaperInputError, match="noebv.parquet"):
        paper.collect(res, default_config, data_mode="mock")
    cfg = {**default_config, "trials": {k: v for k, v in default_config["trials"].items() if k != "noebv"}}
    assert trials.noebv_trial(cfg) is None
    assert paper.collect(res, cfg, data_mode="mock")["EbvTrend"] == ""


def test_validation_sentence_reports_the_injected_size_from_the_truth():
    v = {"n_injected": 276, "n_found": 250, "n_both": 230, "recall": 230 / 276, "precision": 0.92, "jaccard": 0.77,
         "bias_injected": 0.0121, "bias_injected_se": 0.0015, "bias_rest": 0.0004, "bias_rest_se": 0.0006,
         "z_injected": 7.3, "bias_ratio": 30.25, "z_paper_scaled": 9 * (276 / 1807) ** 0.5, "bias_found": 0.011,
         "threshold_z": 5.2, "n_zones_found": 1, "n_spurious_zones": 0, "recovery_jaccard": 0.5, "same_sign": True,
         "recovered": True, "reason": "recovered"}
    s = wording.validation_sentence(v, 0.04, "g")
    assert "recovered it and found nothing else" in s and "Jaccard index 0.77" in s
    assert "measured from the truth, its 276 test galaxies have a bias of 0.01210" in s
    assert "30 times the rest's 0.00040" in s and "$Z = 7.3$" in s and "Z \\approx 3.5$ on as many" in s
    # a spurious zone beside the injected one: not recovered, and said so
    s = wording.validation_sentence({**v, "recovered": False, "reason": "spurious_zone", "n_spurious_zones": 1}, 0.04, "g")
    assert "does not count as recovered" in s and "1 zone(s) where nothing was injected" in s
    # the rest's bias of the other sign: no "times"
    s = wording.validation_sentence({**v, "bias_rest": -0.0004, "bias_ratio": -30.25}, 0.04, "g")
    assert "times the rest's" not in s and "against the rest's" in s


def test_zone_sentence_states_the_field_scatter_it_used():
    from photoz import wording

    base = {"controls": {"n_fit": 4000, "ebv": 0.01, "mag": 0.001}, "nside": 512, "min_galaxies": 30, "grow_z": 1.5,
            "seed_z": 2.5, "threshold_z": 4.6, "alpha": 0.01, "n_permutations": 1000, "n_cells_tested": 100,
            "found": False, "max_abs_z": 3.0, "n_candidate_zones": 2}
    assert "0.0027" in wording.zone_sentence(dict(base, field_scatter=0.00266))
    assert "no field-to-field term" in wording.zone_sentence(dict(base, field_scatter=0.0))
    assert "field" not in wording.zone_sentence(dict(base, field_scatter=None)).split("Each HEALPix")[0]
    assert "2 candidates): this run finds no suspect zone." in wording.zone_sentence(dict(base, field_scatter=0.0))
    assert "1 candidate): this run" in wording.zone_sentence(dict(base, field_scatter=0.0, n_candidate_zones=1))


def test_low_overlap_sentence_says_which_side_fails():
    """A zone found larger than the injected one (high recall, low precision) is not said to miss it."""
    v = {"n_injected": 185, "n_found": 304, "n_both": 153, "recall": 153 / 185, "precision": 153 / 304,
         "jaccard": 153 / 336, "bias_injected": 0.0233, "bias_injected_se": 0.0029, "bias_rest": -0.0023,
         "bias_rest_se": 0.0003, "z_injected": 8.9, "bias_ratio": -10.0, "z_paper_scaled": 2.9, "bias_found": 0.0118,
         "threshold_z": 4.7, "n_zones_found": 1, "n_spurious_zones": 0, "recovery_jaccard": 0.5, "same_sign": True,
         "recovered": False, "reason": "low_overlap"}
    s = wording.validation_sentence(v, 0.3, "g")
    assert "did not recover it" in s and "hold 83\\,\\% of the injected zone's test galaxies" in s
    assert "50\\,\\% of their own lie outside it" in s and "Jaccard index 0.46" in s


def test_knn_sentence_says_what_the_cnn_validation_subset_chose():
    """With the least-loss epoch the validation subset chooses the weights; with the averaged ones it only watches."""
    main, knn = {"n_train": 3082}, {"n_train": 3238}
    best = wording.knn_training(main, knn, "best")
    avg = wording.knn_training(main, knn, "average")
    assert "only to choose its epoch" in best and "only monitors" not in best
    assert "only monitors training" in avg and "choose its epoch" not in avg


@pytest.mark.parametrize("predict_from, phrase", [("best", "lowest validation loss are kept"),
                                                  ("last", "last epoch's weights"),
                                                  ("average", "last quarter of its epochs")])
def test_kept_weights_sentence_names_the_file_predicted_with(default_config, predict_from, phrase):
    cfg = json.loads(json.dumps(default_config))
    cfg["training"]["predict_from"] = predict_from
    assert phrase in paper._protocol_macros(cfg)["KeptWeights"]


def test_mean_pdf_caption_names_the_zone_curve_only_when_a_zone_was_found():
    """Fig. 13 draws the zone's curve only for a non-empty Table 2 region; its caption must not promise one."""
    found = wording.mean_pdf_caption({"table2_region": {"source": "found", "nside": 512, "cells": [1, 2]}})
    none = wording.mean_pdf_caption({"table2_region": {"source": "found", "nside": 512, "cells": []}})
    assert "in the suspect zone found" in found and "no suspect zone" not in found
    assert "suspect zone found" not in none and "found no suspect zone to draw" in none
