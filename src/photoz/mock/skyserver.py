"""The mock SkyServer: an SQLite database with SDSS table and column names.

Tables (the columns the paper's Appendix A query and the frame index read):

* ``SpecObjAll``  specObjID, bestObjID, ra, dec, class, subClass, z, zErr, zWarning,
  targetType, survey, plate, mjd, fiberID, sciencePrimary
* ``PhotoObjAll`` objID, run, rerun, camcol, field, obj, mode, type, flags, clean, insideMask,
  ra, dec, petroMag_{b}, petroMagErr_{b}, extinction_{b}, petroRad_r, petroR50_r, petroR90_r,
  expAB_r, deVAB_r, fracDeV_r, and per band psffwhm_{b}, sky_{b} (at the object)
* ``Photoz``      objID, z, zErr, nnCount, photoErrorClass (kNN stand-in for Beck et al. 2016)
* ``galSpecInfo`` specObjID, e_bv_sfd, primtarget, sectarget, targettype, spectrotype, subclass,
  z, z_err, z_warning
* ``Field``       fieldID, run, rerun, camcol, field, mjd, mjd_{b}, ra, dec, raMin, raMax, decMin,
  decMax, ra_0..3, dec_0..3, stripe, baseRun, epoch, primaryEpoch, airmass, and per band
  psfWidth_{b} (FWHM, arcsec), sky_{b} (nanomaggies/arcsec^2), gain_{b}, darkVariance_{b},
  nMgyPerCount_{b}

SkyServer speaks T-SQL; :func:`photoz.sdss.query.to_sqlite` is the one place
where the dialect differences are handled. SpecObjAll holds repeat spectra of a
few percent of the galaxies (see :func:`photoz.mock.merge.add_repeat_spectra`).
"""

from __future__ import annotations

import sqlite3

import pandas as pd

from ..sdss.query import to_sqlite

__all__ = ["translate_sql", "run_query", "write_database"]

BANDS = ("u", "g", "r", "i", "z")


translate_sql = to_sqlite
"""Kept name of :func:`photoz.sdss.query.to_sqlite`, the one SkyServer-to-SQLite translator."""


def run_query(db_path, sql):
    """Run SkyServer SQL text against the mock database; returns a DataFrame."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return pd.read_sql_query(to_sqlite(sql), con)
    except Exception as err:
        raise RuntimeError(f"mock SkyServer {db_path}: query failed: {err}\n{to_sqlite(sql)}") from err
    finally:
        con.close()


def write_database(path, spec, photo, photoz, galspec, field):
    """Write the five tables (DataFrames) and their indexes to a new SQLite file ``path``."""
    con = sqlite3.connect(path)
    try:
        for name, df in (("SpecObjAll", spec), ("PhotoObjAll", photo), ("Photoz", photoz),
                         ("galSpecInfo", galspec), ("Field", field)):
            df.to_sql(name, con, index=False)
        con.execute("CREATE UNIQUE INDEX ix_spec ON SpecObjAll(specObjID)")
        con.execute("CREATE INDEX ix_spec_best ON SpecObjAll(bestObjID)")
        con.execute("CREATE UNIQUE INDEX ix_photo ON PhotoObjAll(objID)")
        con.execute("CREATE UNIQUE INDEX ix_photoz ON Photoz(objID)")
        con.execute("CREATE UNIQUE INDEX ix_galspec ON galSpecInfo(specObjID)")
        con.execute("CREATE UNIQUE INDEX ix_field ON Field(run, camcol, field)")
        con.commit()
    finally:
        con.close()
