# rules of the query family (see docs/dataflow.md, section 2):
#   query:       the Appendix A catalog query -> results/catalog.parquet
#   frame_index: the Field table + spatial index -> results/frames/{frames,galaxies}.parquet
#   retrieve:    one job per group -> results/frames/group-{group}/MANIFEST.json (frames beside it,
#                undeclared, so Snakemake never deletes verified frames: a rerun fetches only the missing)
# In mode "mock", query and frame_index serve results/mock/skyserver.sqlite on a
# loopback port and query it with the same client; retrieve reads the mock SAS
# tree through a file:// URL with the same code. With sdss.service: casjobs the
# query rule submits a CasJobs batch job instead (a loopback CasJobs in mock
# mode); the SciServer token comes from the environment ($SCISERVER_TOKEN).
#
# These three are the jobs that reach the archive (SkyServer, CasJobs, SAS).
# Under a cluster profile they run on the submitting host by default
# (localrules: compute nodes often have no network); sdss.network_jobs:
# compute_nodes submits them like any other job (docs/slurm.md). Their
# connections are the resources `skyserver` and `sas`, capped by the profile.
if config["sdss"]["network_jobs"] == "submit_host":

    localrules:
        query,
        frame_index,
        retrieve,


rule query:
    input:
        db=MOCK_DB if MOCK else [],
    output:
        catalog="results/catalog.parquet",
        rejected="results/query/rejected.csv",
    log:
        "logs/query/query.log",
    params:
        settings=settings_json("sdss"),
        sdss=lambda w, threads: json.dumps(config["sdss"], sort_keys=True),
        selection=lambda w: json.dumps(config["selection"], sort_keys=True),
        mock=_mock_db_arg(),
    resources:
        mem_mb=4000,
        skyserver=1,
    conda:
        "../../envs/access.yaml"
    shell:
        "python -m photoz query --sdss-json {params.sdss:q} --selection-json {params.selection:q} {params.mock}"
        " --pages results/query/pages --out {output.catalog} --rejected {output.rejected} --log {log}"


rule frame_index:
    input:
        catalog="results/catalog.parquet",
        db=MOCK_DB if MOCK else [],
    output:
        frames="results/frames/frames.parquet",
        galaxies="results/frames/galaxies.parquet",
    log:
        "logs/frame_index/frame_index.log",
    params:
        settings=settings_json("sdss"),
        sdss=lambda w, threads: json.dumps(config["sdss"], sort_keys=True),
        # the values the index depends on (rerun triggers, as before the command took them as options)
        tiles=lambda w: json.dumps(config["tiles"], sort_keys=True),
        s82=lambda w: json.dumps(config["regions"]["stripe82"], sort_keys=True),
        cut=lambda w: json.dumps({k: config["cutouts"][k] for k in ("size", "pixel_scale")}, sort_keys=True),
        # the same values as the command's options (derived, not a trigger)
        grid=lambda w, threads: (f"--nside {config['tiles']['nside']} --n-groups {config['tiles']['n_groups']}"
                                 f" --size {config['cutouts']['size']} --pixel-scale {config['cutouts']['pixel_scale']}"),
        mock=_mock_db_arg(),
    resources:
        mem_mb=8000,
        skyserver=1,
    conda:
        "../../envs/access.yaml"
    shell:
        "python -m photoz frame-index --sdss-json {params.sdss:q} {params.grid}"
        " --stripe82-json {params.s82:q} --catalog {input.catalog} {params.mock}"
        " --pages results/frames/pages --frames-out {output.frames} --galaxies-out {output.galaxies} --log {log}"


rule retrieve:
    input:
        galaxies="results/frames/galaxies.parquet",
        # the mock SAS tree is written together with the mock SkyServer
        db=MOCK_DB if MOCK else [],
    output:
        # temp() when tiles.delete_frames_after_cutouts: the cutouts job then deletes the frames it listed
        manifest=(
            temp("results/frames/group-{group}/MANIFEST.json")
            if config["tiles"]["delete_frames_after_cutouts"]
            else "results/frames/group-{group}/MANIFEST.json"
        ),
    log:
        "logs/retrieve/group-{group}.log",
    params:
        settings=settings_json("sdss"),
        sdss=lambda w, threads: json.dumps(config["sdss"], sort_keys=True),
        sas=("file://results/mock/sas" if MOCK else config["sdss"]["sas_url"]),
    threads: 1
    resources:
        mem_mb=2000,
        # the SAS connections this job holds (sdss.parallel_downloads); the profile caps their sum
        sas=SAS_CONNECTIONS,
    conda:
        "../../envs/access.yaml"
    shell:
        "python -m photoz retrieve --group {wildcards.group} --galaxies {input.galaxies} --sdss-json {params.sdss:q}"
        " --sas-url {params.sas:q} --threads {threads} --manifest {output.manifest} --log {log}"
