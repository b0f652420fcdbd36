"""Sky regions: RA/Dec boxes and SDSS survey-coordinate stripes, one type (photoz.regions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photoz.config import load_config
from photoz.regions import (check_region, describe_region, in_region, region_area_deg2, stripe_eta_range,
                            stripe_number, survey_coords)

ROOT = Path(__file__).resolve().parents[1]


def test_survey_coordinates_match_the_sdss_definition():
    # (eta, lambda) = (0, 0) at (185, 32.5); (57.5, 0) at the north pole; stripe 10 is the equator in
    # the north, Stripe 82 in the south (eta -32.5, |lambda| > 90)
    eta, lam = survey_coords([185.0, 0.0, 185.0, 0.0, 20.0], [32.5, 90.0, 0.0, 0.0, 0.0])
    assert eta == pytest.approx([0.0, 57.5, -32.5, -32.5, -32.5], abs=1e-9)
    assert lam[:3] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert np.all(np.abs(lam[3:]) > 90)
    assert stripe_number(eta, lam).tolist() == [23, 46, 10, 82, 82]
    assert stripe_eta_range([38, 39]) == (36.25, 41.25)
    # eta is constant along a stripe's great circle through the node (RA 95, Dec 0)
    e, _ = survey_coords(np.full(5, 95.0 + 90.0), np.linspace(-10, 80, 5))
    assert np.all(np.diff(e) > 0)


def test_one_region_type_for_boxes_and_stripes():
    box = {"ra_min": -60.0, "ra_max": 60.0, "dec_min": -1.26, "dec_max": 1.26}
    assert in_region([350.0, 10.0, 61.0, 10.0], [0.0, 0.0, 0.0, 2.0], box).tolist() == [True, True, False, False]
    zone = {"ra_min": None, "ra_max": None, "dec_min": None, "dec_max": None, "stripes": [38, 39],
            "lambda_min": -38.5, "lambda_max": -7.5}
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(0, 360, 200_000), np.degrees(np.arcsin(rng.uniform(-1, 1, 200_000)))
    inside = in_region(ra, dec, zone)
    eta, lam = survey_coords(ra[inside], dec[inside])
    assert inside.any() and np.all((eta >= 36.25) & (eta < 41.25)) and np.all((lam >= -38.5) & (lam <= -7.5))
    # the same zone as an eta range
    same = dict(zone, stripes=None, eta_min=36.25, eta_max=41.25)
    assert np.mean(in_region(ra, dec, same) == inside) > 0.9999
    assert describe_region(zone) == "stripes 38-39, -38.5 <= lambda <= -7.5"
    with pytest.raises(ValueError, match="no constraint"):
        check_region({"ra_min": None})
    with pytest.raises(ValueError, match="stripes or an eta range"):
        check_region({"stripes": [38], "eta_min": 0.0, "eta_max": 1.0})
    with pytest.raises(ValueError, match="lambda_min and lambda_max go together"):
        check_region({"stripes": [38], "lambda_min": 0.0})


def test_dr12_suspect_zone_is_stripes_38_39_holding_1_75_percent():
    cfg = load_config(ROOT / "config" / "sdss-dr12.yaml")
    zone = cfg["regions"]["suspect_zone"]
    assert zone["stripes"] == [38, 39] and zone.get("ra_min") is None
    area = region_area_deg2(zone)
    # 5 deg of eta x (sin lambda_max - sin lambda_min): the documented 140.9 deg^2
    exact = 5.0 * np.degrees(np.sin(np.radians(zone["lambda_max"])) - np.sin(np.radians(zone["lambda_min"])))
    assert area == pytest.approx(exact, rel=0.02) and exact == pytest.approx(140.9, abs=0.1)
    # evenly spread over the 8,032 deg^2 legacy spectroscopic footprint: 1,807 of 103,306 test galaxies
    assert exact / 8032 == pytest.approx(1807 / 103306, rel=0.01)
    # the default's regions.suspect_zone is the same estimate (a cross-check, used in mode sdss only), not the
    # mock's injected box: the analysis holds no copy of the injection
    cfg0 = load_config(ROOT / "config.yaml")
    assert cfg0["regions"]["suspect_zone"] == {k: v for k, v in zone.items() if v is not None}
    inj = cfg0["mock"]["suspect_zone"]
    assert not in_region([(inj["ra_min"] + inj["ra_max"]) / 2], [(inj["dec_min"] + inj["dec_max"]) / 2],
                         cfg0["regions"]["suspect_zone"]).any()
    # Table 2 removes the zones found on Stripes 38-39 in the DR12 preset
    assert cfg["zone"]["table2_within"] == {"stripes": [38, 39]}
