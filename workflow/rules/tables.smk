# rules of the tables family (see docs/dataflow.md, Sect. 5):
#   knn      the kNN baseline (our B16 method) per trial -> results/knn/{trial}.parquet
#   table1   per-fold metrics of the main trial          -> results/table1.csv, results/tables/table1.tex
#   table2   every row of config `table2:`               -> results/table2.csv, results/tables/table2.tex
#   tableA1  the layers of the network                   -> results/tableA1.csv, results/tables/tableA1.tex
#   learning_curve  CNN and kNN of config `learning_curve:` trials on fold 0's test galaxies
#                                                        -> results/learning_curve.csv, results/tables/learning_curve.tex
#            (defined only when the list is non-empty)
# `snakemake results/table2.csv` builds only the ensembles of the trials that
# table2 rows name, the kNN of trials with a knn row, and the catalog.


rule knn:
    input:
        catalog="results/shards/catalog.parquet",
    output:
        "results/knn/{trial}.parquet",
    log:
        "logs/knn/{trial}.log",
    params:
        trial=lambda w: json.dumps(_trials.split_spec(config, w.trial)),
        k=config["knn"]["k"],
        clip_sigma=config["knn"]["clip_sigma"],
        k_grid=",".join(map(str, config["knn"].get("k_grid") or [])),
        n_folds=config["dataset"]["n_folds"],
        seed=config["seed"],
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m photoz knn --catalog {input.catalog} --trial {wildcards.trial} --trial-json {params.trial:q}"
        " --n-folds {params.n_folds} --k {params.k} --clip-sigma {params.clip_sigma} --k-grid '{params.k_grid}'"
        " --seed {params.seed} --output {output} --log {log}"


rule table1:
    input:
        ensemble=_trials.ensemble_path(table1_trial()),
    output:
        csv="results/table1.csv",
        tex="results/tables/table1.tex",
    log:
        "logs/table1/table1.log",
    params:
        bootstrap=config["paper"]["bootstrap"],
        seed=config["seed"],
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m photoz tables table1 --ensemble {input.ensemble} --bootstrap {params.bootstrap} --seed {params.seed}"
        " --csv {output.csv} --tex {output.tex} --log {log}"


rule table2:
    input:
        catalog="results/shards/catalog.parquet",
        ensembles=[_trials.ensemble_path(t) for t in table2_trials()],
        knn=[_trials.knn_path(t) for t in knn_trials()],
        zone="results/zone/zone.json",
    output:
        csv="results/table2.csv",
        tex="results/tables/table2.tex",
    log:
        "logs/table2/table2.log",
    params:
        cfg=json.dumps({
            "mode": config["mode"],
            "table2": config["table2"],
            "regions": config["regions"],
            "trials": {t: _trials.split_spec(config, t) for t in table2_trials()},
            "n_folds": config["dataset"]["n_folds"],
            "bins": config["bins"],
            "bootstrap": config["paper"]["bootstrap"],
            "seed": config["seed"],
        }, sort_keys=True),
        ensembles=lambda w, input: " ".join(f"--ensemble {shlex.quote(f'{t}={p}')}" for t, p in zip(table2_trials(), input.ensembles)),
        knn=lambda w, input: " ".join(f"--knn {shlex.quote(f'{t}={p}')}" for t, p in zip(knn_trials(), input.knn)),
    resources:
        mem_mb=8000,
        runtime=60,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m photoz tables table2 --config-json {params.cfg:q} --catalog {input.catalog}"
        " {params.ensembles} {params.knn} --zone {input.zone} --csv {output.csv} --tex {output.tex} --log {log}"


rule tableA1:
    output:
        csv="results/tableA1.csv",
        tex="results/tables/tableA1.tex",
    log:
        "logs/tableA1/tableA1.log",
    params:
        network=json.dumps(config["networks"]["full"]),
        n_bins=config["bins"]["n"],
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/analysis.yaml"
    shell:
        "python -m photoz tables tableA1 --network-json {params.network:q} --n-bins {params.n_bins}"
        " --csv {output.csv} --tex {output.tex} --log {log}"


if learning_curve_trials():

    rule learning_curve:
        input:
            catalog="results/shards/catalog.parquet",
            ensembles=[_trials.ensemble_path(t) for t in learning_curve_trials()],
            knn=[_trials.knn_path(t) for t in learning_curve_trials()],
            # every member's fold-0 predictions: the spread between members enters the errors
            members=[f"results/predictions/{t}/fold0/seed{s}.npz" for t in learning_curve_trials()
                     for s in trial_seeds(t)],
        output:
            csv=LEARNING_CURVE_CSV,
            tex="results/tables/learning_curve.tex",
        log:
            "logs/learning_curve/learning_curve.log",
        params:
            cfg=json.dumps({
                "learning_curve": learning_curve_trials(),
                "trials": {t: _trials.split_spec(config, t) for t in learning_curve_trials()},
                "networks": {t: _trials.network_name(config, t) for t in learning_curve_trials()},
                "bins": config["bins"],
                "bootstrap": config["paper"]["bootstrap"],
                "seed": config["seed"],
            }, sort_keys=True),
            ensembles=lambda w, input: " ".join(f"--ensemble {shlex.quote(f'{t}={p}')}"
                                                for t, p in zip(learning_curve_trials(), input.ensembles)),
            knn=lambda w, input: " ".join(f"--knn {shlex.quote(f'{t}={p}')}"
                                          for t, p in zip(learning_curve_trials(), input.knn)),
            members=lambda w, input: " ".join(f"--member {shlex.quote(f'{t}={p}')}" for t, p in zip(
                [t for t in learning_curve_trials() for s in trial_seeds(t)], input.members)),
        resources:
            mem_mb=8000,
            runtime=60,
        conda:
            "../../envs/analysis.yaml"
        shell:
            "python -m photoz learning-curve --config-json {params.cfg:q} --catalog {input.catalog}"
            " {params.ensembles} {params.knn} {params.members} --csv {output.csv} --tex {output.tex} --log {log}"
