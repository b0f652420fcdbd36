# rules of the zone family (see docs/dataflow.md, Sect. 5):
#   zone_detect    the suspect zone, found in the residual map of the Table 1 trial
#                  after a fit against E(B-V), observed r and z_spec
#                  -> results/zone/zone.json (found zones, their bias, the region
#                     Table 2 removes; mode sdss: the configured region as a
#                     cross-check), results/zone/cells.csv (every cell's test)
#   zone_validate  mode: mock only: found vs injected zone (truth table)
#                  -> results/zone/validation.json


rule zone_detect:
    input:
        ensemble=f"results/ensemble/{table1_trial()}.parquet",
        catalog="results/shards/catalog.parquet",
    output:
        zone="results/zone/zone.json",
        cells="results/zone/cells.csv",
    log:
        "logs/zone/detect.log",
    params:
        cfg=json.dumps({"mode": config["mode"], "seed": config["seed"], "zone": config["zone"],
                        "regions": {"suspect_zone": config["regions"]["suspect_zone"]}}),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m photoz zone detect --ensemble {input.ensemble} --catalog {input.catalog}"
        " --config-json {params.cfg:q} --out {output.zone} --cells {output.cells} --log {log}"


rule zone_validate:
    input:
        zone="results/zone/zone.json",
        ensemble=f"results/ensemble/{table1_trial()}.parquet",
        catalog="results/shards/catalog.parquet",
        truth="results/mock/truth.parquet",
    output:
        "results/zone/validation.json",
    log:
        "logs/zone/validate.log",
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m photoz zone validate --zone {input.zone} --ensemble {input.ensemble} --catalog {input.catalog}"
        " --truth {input.truth} --out {output} --log {log}"
