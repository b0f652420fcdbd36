"""Photometric redshifts from SDSS images with a CNN.

A reproduction of Pasquet et al. (2019, A&A 621, A26). The package holds the
science; the Snakemake rules in ``workflow/rules`` only call it. The core of
``photoz.nn`` needs nothing beyond torch and numpy so that it runs on a bare
GPU machine.
"""

__version__ = "0.1.0"

BANDS = ("u", "g", "r", "i", "z")
EXTINCTION_COEFF = {"u": 5.155, "g": 3.793, "r": 2.751, "i": 2.086, "z": 1.479}
"""SDSS A_band / E(B-V) (Schlafly & Finkbeiner 2011 recalibration of SFD)."""
