"""Synthetic SkyServer databases for the query and frame-index tests (no tests here).

``make_skyserver_db(path, n)`` writes an SQLite database with the tables and
columns the Appendix A query and the Field query read, holding ``n`` galaxies
that pass every cut plus decoys that each fail exactly one cut.
"""

from __future__ import annotations

import sqlite3

import numpy as np

BANDS = "ugriz"


def _field_rows(runs):
    """Field rows: (run, camcol, n_fields, ra0, dec0); frames 0.2245 x 0.1635 deg, stepping 0.1494 deg."""
    rows = []
    for run, camcol, nf, ra0, dec0 in runs:
        for f in range(nf):
            ra_c = ra0 + f * 0.1494
            dec_c = dec0
            half_ra = 0.0817 / np.cos(np.radians(dec_c))
            half_dec = 0.1126
            rows.append(dict(run=run, rerun=301, camcol=camcol, field=11 + f, mjd_r=51000.0 + run,
                             ra=ra_c, dec=dec_c, raMin=ra_c - half_ra, raMax=ra_c + half_ra,
                             decMin=dec_c - half_dec, decMax=dec_c + half_dec,
                             **{f"psfWidth_{b}": 1.4 + 0.01 * i for i, b in enumerate(BANDS)},
                             **{f"sky_{b}": 0.5 + i for i, b in enumerate(BANDS)},
                             **{f"gain_{b}": 4.7 for b in BANDS},
                             **{f"darkVariance_{b}": 1.2 for b in BANDS}))
    return rows


DEFAULT_RUNS = [(9001, 1, 6, 150.0, 30.0), (9101, 3, 6, 20.0, 0.0), (9102, 3, 6, 20.02, 0.01),
                (9103, 3, 6, 20.04, -0.01)]


def make_skyserver_db(path, n=200, seed=1, runs=DEFAULT_RUNS, repeats=0, kept=None):
    """Write the database; return the sorted specObjIDs of the good galaxies' first spectra.

    ``repeats`` good galaxies get a second spectrum; ``kept`` (a dict), if
    given, receives objID -> the specObjID the one-spectrum rule must keep.
    """
    kept = {} if kept is None else kept
    rng = np.random.default_rng(seed)
    con = sqlite3.connect(path)
    fcols = list(_field_rows(runs[:1])[0].keys())
    con.execute(f"CREATE TABLE Field ({', '.join(fcols)})")
    frows = _field_rows(runs)
    con.executemany(f"INSERT INTO Field VALUES ({','.join('?' * len(fcols))})",
                    [tuple(r[c] for c in fcols) for r in frows])
    con.execute("CREATE TABLE SpecObjAll (specObjID INTEGER PRIMARY KEY, bestObjID INTEGER, class TEXT, "
                "subClass TEXT, z REAL, zErr REAL, zWarning INTEGER, targetType TEXT, survey TEXT, "
                "sciencePrimary INTEGER)")
    pcols = (["objID", "ra", "dec", "type", "flags", "clean", "insideMask", "run", "rerun", "camcol", "field"]
             + [f"petroMag_{b}" for b in BANDS] + [f"petroMagErr_{b}" for b in BANDS]
             + [f"extinction_{b}" for b in BANDS] + ["expAB_r", "deVAB_r", "fracDeV_r", "petroR50_r"]
             + [f"psffwhm_{b}" for b in BANDS] + [f"sky_{b}" for b in BANDS])
    con.execute(f"CREATE TABLE PhotoObjAll ({', '.join(pcols)})")
    con.execute("CREATE TABLE Photoz (objID INTEGER PRIMARY KEY, z REAL, zErr REAL)")
    con.execute("CREATE TABLE galSpecInfo (specObjID INTEGER PRIMARY KEY, primtarget INTEGER, sectarget INTEGER, "
                "targettype TEXT, spectrotype TEXT, subclass TEXT, e_bv_sfd REAL)")
    decoys = ["class", "zwarning", "target", "survey", "bit", "clean", "mask", "rmag", "zhigh", "zzero"]
    total = n + len(decoys)
    spec_ids = 10**17 + rng.choice(10**9, size=total, replace=False).astype(np.int64)
    rng.shuffle(spec_ids)
    good_ids = []
    for i in range(total):
        sid = int(spec_ids[i])
        oid = 1237650000000000000 + i
        fr = frows[rng.integers(len(frows))]
        ra = fr["ra"] + rng.uniform(-0.07, 0.07)
        dec = fr["dec"] + rng.uniform(-0.1, 0.1)
        decoy = decoys[i - n] if i >= n else None
        ext_r = float(rng.uniform(0.02, 0.3))
        ext = {b: ext_r * c / 2.751 for b, c in zip(BANDS, (5.155, 3.793, 2.751, 2.086, 1.479))}
        r = float(rng.uniform(14.0, 17.7)) + ext_r
        if decoy == "rmag":
            r = 17.9 + ext_r
        mags = {b: r + d for b, d in zip(BANDS, (1.8, 0.8, 0.0, -0.4, -0.7))}
        z = float(rng.uniform(0.02, 0.3))
        z = 0.45 if decoy == "zhigh" else (0.0 if decoy == "zzero" else z)
        con.execute("INSERT INTO SpecObjAll VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (sid, oid, "STAR" if decoy == "class" else "GALAXY", "", z, 1e-4,
                     4 if decoy == "zwarning" else 0, "SKY" if decoy == "target" else "SCIENCE",
                     "boss" if decoy == "survey" else "sdss", 1))
        vals = dict(objID=oid, ra=ra, dec=dec, type=3, flags=0, clean=0 if decoy == "clean" else 1,
                    insideMask=1 if decoy == "mask" else 0, run=fr["run"], rerun=301, camcol=fr["camcol"],
                    field=fr["field"], expAB_r=float(rng.uniform(0.1, 1)), deVAB_r=float(rng.uniform(0.1, 1)),
                    fracDeV_r=float(rng.uniform(0, 1)), petroR50_r=float(rng.uniform(1, 5)))
        vals.update({f"petroMag_{b}": mags[b] for b in BANDS})
        vals.update({f"petroMagErr_{b}": 0.01 for b in BANDS})
        vals.update({f"extinction_{b}": ext[b] for b in BANDS})
        vals.update({f"psffwhm_{b}": fr[f"psfWidth_{b}"] + float(rng.normal(0, 0.02)) for b in BANDS})
        vals.update({f"sky_{b}": fr[f"sky_{b}"] * float(rng.uniform(0.97, 1.03)) for b in BANDS})
        if i == 3:
            vals["deVAB_r"] = -9999.0  # an SDSS "not measured" sentinel in an optional column
        con.execute(f"INSERT INTO PhotoObjAll VALUES ({','.join('?' * len(pcols))})", tuple(vals[c] for c in pcols))
        con.execute("INSERT INTO Photoz VALUES (?,?,?)", (oid, z + float(rng.normal(0, 0.02)), 0.02))
        con.execute("INSERT INTO galSpecInfo VALUES (?,?,?,?,?,?,?)",
                    (sid, 0 if decoy == "bit" else 64 | 2, 0, "SCIENCE", "GALAXY", "",
                     ext_r / 2.751 + float(rng.normal(0, 0.002))))
        if decoy is None:
            good_ids.append(sid)
    # repeat spectra (same bestObjID, own specObjID) of the first `repeats` good galaxies, four cases:
    #   0: the repeat is sciencePrimary although its zErr is larger -> the repeat is kept
    #   1: the primary is a BOSS repeat (cut by survey) -> the legacy original is kept
    #   2: the original stays primary, the repeat has the smaller zErr -> the original is kept
    #   3: neither is primary -> the smaller zErr (the repeat) is kept
    for k in range(repeats):
        row = con.execute("SELECT * FROM SpecObjAll WHERE specObjID=?", (good_ids[k],)).fetchone()
        case = k % 4
        rsid = row[0] + 10**9 + k
        zerr = {0: 2e-4, 1: 5e-5, 2: 5e-5, 3: 5e-5}[case]
        con.execute("INSERT INTO SpecObjAll VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (rsid,) + tuple(row[1:5]) + (zerr, 0, "SCIENCE", "boss" if case == 1 else "sdss",
                                                 int(case in (0, 1))))
        if case in (0, 1, 3):
            con.execute("UPDATE SpecObjAll SET sciencePrimary=0 WHERE specObjID=?", (row[0],))
        gi = con.execute("SELECT * FROM galSpecInfo WHERE specObjID=?", (row[0],)).fetchone()
        con.execute("INSERT INTO galSpecInfo VALUES (?,?,?,?,?,?,?)", (rsid,) + tuple(gi[1:]))
        kept[row[1]] = rsid if case in (0, 3) else row[0]
    con.commit()
    con.close()
    return sorted(good_ids)
