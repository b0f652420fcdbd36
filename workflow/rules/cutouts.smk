# rules of the cutouts family (see docs/dataflow.md, section 3):
#   cutouts: one job per group of sky tiles -> results/cutouts/group-{group}.npz
#   shards:  all groups -> results/shards/ (manifest.json + shard-*.npy + catalog.parquet)


rule cutouts:
    input:
        frames_dir="results/frames/group-{group}",
        galaxies="results/frames/galaxies.parquet",
        catalog="results/catalog.parquet",
        frames="results/frames/frames.parquet",
    output:
        cube="results/cutouts/group-{group}.npz",
        failures="results/cutouts/group-{group}-failures.csv",
    log:
        "logs/cutouts/group-{group}.log",
    params:
        settings=settings_json("cutouts"),
        cfg=lambda w, threads: json.dumps(config["cutouts"], sort_keys=True),
    threads: config["cutouts"]["threads"]
    resources:
        mem_mb=4000,
    conda:
        "../../envs/cutouts.yaml"
    shell:
        "python -m photoz cutouts --group {wildcards.group} --frame-dir {input.frames_dir}"
        " --galaxies {input.galaxies} --catalog {input.catalog} --frames {input.frames}"
        " --config-json {params.cfg:q} --out {output.cube} --failures {output.failures}"
        " 2> {log}"


rule shards:
    input:
        cubes=expand("results/cutouts/group-{group}.npz", group=GROUPS),
        failures=expand("results/cutouts/group-{group}-failures.csv", group=GROUPS),
        catalog="results/catalog.parquet",
        galaxies="results/frames/galaxies.parquet",
    output:
        manifest="results/shards/manifest.json",
        catalog="results/shards/catalog.parquet",
        failures="results/cutouts/failures.csv",
    log:
        "logs/shards/shards.log",
    params:
        cfg=lambda w: json.dumps({"seed": config["seed"], "dataset": config["dataset"]}, sort_keys=True),
        out_dir=lambda w, output: str(Path(output.manifest).parent),
    resources:
        mem_mb=4000,
    conda:
        "../../envs/cutouts.yaml"
    shell:
        "python -m photoz shards --cutouts {input.cubes} --failures {input.failures}"
        " --catalog {input.catalog} --galaxies {input.galaxies} --config-json {params.cfg:q}"
        " --out-dir {params.out_dir} --failures-out {output.failures} 2> {log}"
