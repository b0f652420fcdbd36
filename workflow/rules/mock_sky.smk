# rules of the mock_sky family (see docs/dataflow.md, section 1):
#   mock_sky_chunk: one parallel job per chunk of fields (all epochs): renders its
#                   frames into the mock SAS tree and measures its catalog objects
#   mock_sky_merge: the mock SkyServer (SQLite) and the truth tables
# The frames of the SAS tree are side outputs of the chunks (their number reaches
# millions in config/mock-large.yaml, too many for the DAG); the per-chunk field
# tables list them, and the SkyServer database depends on every chunk.


rule mock_sky_chunk:
    output:
        catalog="results/mock/chunks/chunk-{chunk}.parquet",
        fields="results/mock/chunks/chunk-{chunk}-fields.parquet",
    log:
        "logs/mock_sky_chunk/chunk-{chunk}.log",
    params:
        cfg=lambda w: json.dumps(config["mock"], sort_keys=True),
    wildcard_constraints:
        chunk=r"\d+",
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        "../../envs/mock.yaml"
    shell:
        "python -m photoz mock-sky-chunk --config-json {params.cfg:q} --chunk {wildcards.chunk}"
        " --sas-root results/mock/sas --out-catalog {output.catalog} --out-fields {output.fields} --log {log}"


rule mock_sky_merge:
    input:
        catalogs=expand("results/mock/chunks/chunk-{chunk}.parquet", chunk=MOCK_CHUNKS),
        fields=expand("results/mock/chunks/chunk-{chunk}-fields.parquet", chunk=MOCK_CHUNKS),
    output:
        db="results/mock/skyserver.sqlite",
        truth="results/mock/truth.parquet",
        truth_frames="results/mock/truth-frames.parquet",
    log:
        "logs/mock_sky_merge/merge.log",
    params:
        cfg=lambda w: json.dumps(config["mock"], sort_keys=True),
    resources:
        mem_mb=4000,
    conda:
        "../../envs/mock.yaml"
    shell:
        "python -m photoz mock-sky-merge --config-json {params.cfg:q} --catalogs {input.catalogs}"
        " --fields {input.fields} --db {output.db} --truth {output.truth}"
        " --truth-frames {output.truth_frames} --log {log}"
