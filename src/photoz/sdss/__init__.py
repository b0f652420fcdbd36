"""Access to SDSS: the SkyServer SQL endpoint and the SAS frame tree.

``query``           the SQL text (Appendix A of the paper), one dialect switch
``skyserver``       the paged, rate-limited, resumable SkyServer client (astroquery.sdss)
``skyserver_server`` a loopback SkyServer backed by SQLite (mock mode and tests), as strict as SkyServer
``casjobs``         the CasJobs batch-job path (``sdss.service: casjobs``, SciServer REST API)
``casjobs_server``  a loopback CasJobs (submit, status, MyDB query, failed jobs, expired tokens)
``sas``             frame retrieval from the SAS (https:// or file://)
``sas_server``      a loopback SAS with injectable faults (tests)
``frames``          the reader of real and mock frame files (mock_sky family)
"""
