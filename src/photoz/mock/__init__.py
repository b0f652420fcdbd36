"""The offline mock of SDSS: a synthetic sky served as SDSS serves the real one.

Modules
-------
seds        kcorrect template SEDs through the speclite ``sdss2010`` responses
population  galaxies (Blanton et al. 2003 luminosity function), faint galaxies, stars
reddening   the smooth mock E(B-V) map and the SDSS extinction coefficients
geometry    runs, camcols, fields and epochs; frame WCS and observing conditions
render      GalSim rendering of frames written in the SDSS frame format
photometry  Petrosian photometry measured on the rendered frames with sep
skyserver   the SQLite mock SkyServer, its SQL dialect shim and the Photoz kNN
chunk       ``mock-sky-chunk``: one parallel generation job
merge       ``mock-sky-merge``: the database and the truth table
"""
