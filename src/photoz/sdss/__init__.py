"""Access to SDSS: the SkyServer SQL endpoint and the SAS frame tree.

``query``           the SQL text (Appendix A of the paper), one dialect switch
``skyserver``       the paged, rate-limited, resumable SkyServer client (astroquery.sdss)
``skyserver_server`` a loopback SkyServer backed by SQLite (mock mode and tests)
``sas``             frame retrieval from the SAS (https:// or file://)
``sas_server``      a loopback SAS with injectable faults (tests)
``frames``          the reader of real and mock frame files (mock_sky family)
"""
