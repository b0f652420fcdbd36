# rules of the cutouts family (see docs/dataflow.md, section 3):
#   cutouts: one job per group of sky tiles -> results/cutouts/group-{group}.npz (+ failures, losses)
#   shards:  all groups -> results/shards/ (manifest.json + shard-*.npy + catalog.parquet)
#            and results/cutouts/losses.json; fails when cutouts.max_lost_fraction is exceeded
#   swarp_check: only with cutouts.resampler native and swarp_check_galaxies > 0: a random subset of
#            the run's galaxies remade with SWarp -> results/cutouts/swarp_check.json (read by paper_variables)

#: Whether the SWarp check of a native run is scheduled (paper.smk declares its output as an input then).
#: The config validation refuses it together with tiles.delete_frames_after_cutouts (the frames are reread).
SWARP_CHECK = config["cutouts"]["resampler"] == "native" and config["cutouts"]["swarp_check_galaxies"] > 0
#: Keys of the cutouts section that do not change the cubes (the cutouts rule's rerun trigger leaves them out):
#: max_lost_fraction is the shards step's check, swarp_check_galaxies the swarp_check rule's.
_NOT_CUBE_KEYS = ("max_lost_fraction", "swarp_check_galaxies")


rule cutouts:
    input:
        manifest="results/frames/group-{group}/MANIFEST.json",
        galaxies="results/frames/galaxies.parquet",
        catalog="results/catalog.parquet",
        frames="results/frames/frames.parquet",
    output:
        cube="results/cutouts/group-{group}.npz",
        failures="results/cutouts/group-{group}-failures.csv",
        losses="results/cutouts/group-{group}-losses.json",
    log:
        "logs/cutouts/group-{group}.log",
    params:
        # the rerun trigger: the settings of the cubes only (not _NOT_CUBE_KEYS)
        settings=json.dumps({k: v for k, v in result_settings(config, "cutouts").items()
                             if k not in _NOT_CUBE_KEYS}, sort_keys=True),
        cfg=lambda w, threads: json.dumps(config["cutouts"], sort_keys=True),
        delete="--delete-frames" if config["tiles"]["delete_frames_after_cutouts"] else "",
    threads: config["cutouts"]["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/cutouts.yaml"
    shell:
        "python -m photoz cutouts --group {wildcards.group} --manifest {input.manifest}"
        " --galaxies {input.galaxies} --catalog {input.catalog} --frames {input.frames}"
        " --config-json {params.cfg:q} --out {output.cube} --failures {output.failures}"
        " --losses {output.losses} {params.delete} 2> {log}"


rule shards:
    input:
        cubes=expand("results/cutouts/group-{group}.npz", group=GROUPS),
        failures=expand("results/cutouts/group-{group}-failures.csv", group=GROUPS),
        losses=expand("results/cutouts/group-{group}-losses.json", group=GROUPS),
        catalog="results/catalog.parquet",
        galaxies="results/frames/galaxies.parquet",
    output:
        manifest="results/shards/manifest.json",
        catalog="results/shards/catalog.parquet",
        failures="results/cutouts/failures.csv",
        losses="results/cutouts/losses.json",
    log:
        "logs/shards/shards.log",
    params:
        cfg=lambda w: json.dumps(
            {
                "seed": config["seed"],
                "dataset": config["dataset"],
                "max_lost_fraction": config["cutouts"]["max_lost_fraction"],
            },
            sort_keys=True,
        ),
        out_dir=lambda w, output: str(Path(output.manifest).parent),
    resources:
        mem_mb=4000,
    conda:
        "../../envs/cutouts.yaml"
    shell:
        "python -m photoz shards --cutouts {input.cubes} --failures {input.failures}"
        " --catalog {input.catalog} --galaxies {input.galaxies} --config-json {params.cfg:q}"
        " --out-dir {params.out_dir} --failures-out {output.failures}"
        " --losses {input.losses} --losses-out {output.losses} 2> {log}"


if SWARP_CHECK:

    rule swarp_check:
        input:
            cubes=expand("results/cutouts/group-{group}.npz", group=GROUPS),
            manifests=expand("results/frames/group-{group}/MANIFEST.json", group=GROUPS),
            galaxies="results/frames/galaxies.parquet",
            catalog="results/catalog.parquet",
            frames="results/frames/frames.parquet",
        output:
            "results/cutouts/swarp_check.json",
        log:
            "logs/swarp_check.log",
        params:
            # the rerun trigger: what the subset and the SWarp cutouts depend on
            settings=json.dumps({"seed": config["seed"], "cutouts": {
                k: v for k, v in result_settings(config, "cutouts").items() if k != "max_lost_fraction"}},
                sort_keys=True),
            cfg=config_json("cutouts", seed=config["seed"]),
        threads: config["cutouts"]["threads"]
        resources:
            mem_mb=4000,
        conda:
            "../../envs/cutouts.yaml"
        shell:
            "python -m photoz swarp-check --cubes {input.cubes} --manifests {input.manifests}"
            " --galaxies {input.galaxies} --catalog {input.catalog} --frames {input.frames}"
            " --config-json {params.cfg:q} --out {output:q} --log {log:q}"
