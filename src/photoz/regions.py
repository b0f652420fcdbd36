"""Sky regions of the analysis (``regions`` config section): one type for every region.

A region is the set of sky positions that satisfy every constraint it names:

* an equatorial box: ``ra_min, ra_max`` (deg; may wrap through 0, e.g.
  -60..60) and ``dec_min, dec_max``;
* SDSS survey coordinates: ``stripes`` (a list of SDSS stripe numbers), or an
  ``eta_min, eta_max`` range of survey latitude eta, and a ``lambda_min,
  lambda_max`` range of survey longitude lambda.

A constraint left out or set to ``null`` does not restrict: Snakemake merges
config files key by key, so a preset that replaces the default's RA/Dec box
by survey ranges sets the box keys to ``null`` (see config/sdss-dr12.yaml).

Survey coordinates follow the SDSS definition (Stoughton et al. 2002; the
idlutils ``radec_to_etalambda`` convention): the stripes are great circles
through (RA, Dec) = (95, 0); (eta, lambda) = (0, 0) is (185, 32.5) and
(57.5, 0) is the north pole; eta runs over [-90, 90], lambda over
[-180, 180]. Stripe n (n <= 46) is centred on eta = 2.5 n - 57.5 and
2.5 deg wide in eta; southern stripes (|lambda| > 90) are n + 72 of the
northern stripe at the same eta (Stripe 82 at eta = -32.5).
"""

from __future__ import annotations

import numpy as np

__all__ = ["BOX_KEYS", "SURVEY_KEYS", "survey_coords", "stripe_number", "stripe_eta_range", "in_region",
           "in_box", "region_area_deg2", "describe_region", "check_region"]

NODE_RA = 95.0
"""RA (deg) where all SDSS stripes cross the equator."""
ETA_POLE = 32.5
"""Dec (deg) of the survey centre (eta = lambda = 0 at RA 185)."""
STRIPE_WIDTH = 2.5
"""Width of a stripe in eta (deg)."""

BOX_KEYS = ("ra_min", "ra_max", "dec_min", "dec_max")
SURVEY_KEYS = ("stripes", "eta_min", "eta_max", "lambda_min", "lambda_max")


def survey_coords(ra, dec):
    """SDSS survey coordinates ``(eta, lambda)`` in degrees of equatorial ``(ra, dec)``."""
    ra = np.radians(np.asarray(ra, float) - NODE_RA)
    dec = np.radians(np.asarray(dec, float))
    x = np.cos(ra) * np.cos(dec)
    y = np.sin(ra) * np.cos(dec)
    z = np.sin(dec)
    lam = -np.degrees(np.arcsin(np.clip(x, -1.0, 1.0)))
    eta = np.degrees(np.arctan2(z, y)) - ETA_POLE
    eta = np.mod(eta + 180.0, 360.0) - 180.0
    back = (eta > 90.0) | (eta < -90.0)
    eta = np.where(eta > 90.0, eta - 180.0, np.where(eta < -90.0, eta + 180.0, eta))
    lam = np.where(back, 180.0 - lam, lam)
    lam = np.mod(lam + 180.0, 360.0) - 180.0
    return eta, lam


def stripe_number(eta, lam):
    """The SDSS stripe holding survey position ``(eta, lambda)``."""
    eta, lam = np.asarray(eta, float), np.asarray(lam, float)
    n = np.floor((eta + 58.75) / STRIPE_WIDTH).astype(int)
    return np.where(np.abs(lam) > 90.0, n + 72, n)


def stripe_eta_range(stripes):
    """``(eta_min, eta_max)`` covered by a list of contiguous northern stripes."""
    s = sorted(int(v) for v in stripes)
    if not s or s != list(range(s[0], s[-1] + 1)):
        raise ValueError(f"stripes must be a non-empty list of consecutive numbers, got {stripes}")
    if s[-1] > 46:
        raise ValueError(f"stripe ranges are for northern stripes (<= 46), got {stripes}")
    return STRIPE_WIDTH * s[0] - 57.5 - STRIPE_WIDTH / 2, STRIPE_WIDTH * s[-1] - 57.5 + STRIPE_WIDTH / 2


def _given(region, key):
    return region.get(key) is not None


def check_region(region, name="region"):
    """Raise ``ValueError`` naming ``name`` unless ``region`` is a well-formed region."""
    unknown = sorted(set(region) - set(BOX_KEYS) - set(SURVEY_KEYS))
    if unknown:
        raise ValueError(f"{name}: unknown keys {unknown}")
    if not any(_given(region, k) for k in BOX_KEYS + SURVEY_KEYS):
        raise ValueError(f"{name}: no constraint given (need an RA/Dec box or survey stripes/eta/lambda ranges)")
    for lo, hi in (("ra_min", "ra_max"), ("dec_min", "dec_max"), ("eta_min", "eta_max"),
                   ("lambda_min", "lambda_max")):
        if _given(region, lo) != _given(region, hi):
            raise ValueError(f"{name}: {lo} and {hi} go together")
        if _given(region, lo) and lo != "ra_min" and region[lo] > region[hi]:
            raise ValueError(f"{name}: {lo} = {region[lo]} is above {hi} = {region[hi]}")
    if _given(region, "stripes") and _given(region, "eta_min"):
        raise ValueError(f"{name}: give stripes or an eta range, not both")
    if _given(region, "stripes"):
        stripe_eta_range(region["stripes"])


def in_region(ra, dec, region):
    """True where ``(ra, dec)`` (deg) lies in ``region`` (a dict, see the module doc)."""
    check_region(region)
    ra = np.asarray(ra, float)
    dec = np.asarray(dec, float)
    inside = np.ones(np.broadcast(ra, dec).shape, bool)
    if _given(region, "ra_min"):
        width = region["ra_max"] - region["ra_min"]
        if width < 360:
            inside &= np.mod(ra - region["ra_min"], 360.0) <= width
    if _given(region, "dec_min"):
        inside &= (dec >= region["dec_min"]) & (dec <= region["dec_max"])
    if any(_given(region, k) for k in SURVEY_KEYS):
        eta, lam = survey_coords(ra, dec)
        if _given(region, "stripes"):
            inside &= np.isin(stripe_number(eta, lam), [int(s) for s in region["stripes"]])
        if _given(region, "eta_min"):
            inside &= (eta >= region["eta_min"]) & (eta <= region["eta_max"])
        if _given(region, "lambda_min"):
            inside &= (lam >= region["lambda_min"]) & (lam <= region["lambda_max"])
    return inside


in_box = in_region
"""Kept name: an RA/Dec box is a region."""


def region_area_deg2(region, n=2_000_000, seed=0):
    """Area of ``region`` in square degrees (Monte Carlo over the sphere; ~0.1% for ~100 deg^2)."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return float(np.mean(in_region(ra, dec, region)) * 41252.96)


def describe_region(region):
    """A short text for captions and logs, e.g. ``stripes 38-39, 119 <= lambda <= 149``."""
    parts = []
    if _given(region, "ra_min"):
        parts.append(f"{region['ra_min']:g} <= RA <= {region['ra_max']:g}")
    if _given(region, "dec_min"):
        parts.append(f"{region['dec_min']:g} <= Dec <= {region['dec_max']:g}")
    if _given(region, "stripes"):
        s = sorted(region["stripes"])
        parts.append(f"stripe {s[0]}" if len(s) == 1 else f"stripes {s[0]}-{s[-1]}")
    if _given(region, "eta_min"):
        parts.append(f"{region['eta_min']:g} <= eta <= {region['eta_max']:g}")
    if _given(region, "lambda_min"):
        parts.append(f"{region['lambda_min']:g} <= lambda <= {region['lambda_max']:g}")
    return ", ".join(parts)
