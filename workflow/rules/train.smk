# rules of the train family (see docs/dataflow.md, section 4):
#   train:    one ensemble member (trial, fold, seed) -> results/models/{trial}/fold{fold}/seed{seed}/
#   predict:  that member's 180-bin PDF of every test galaxy of the fold
#   ensemble: all folds and members of a trial -> results/ensemble/{trial}.parquet
#
# A killed train job leaves results/models/.../resume.pt (not a declared output,
# so Snakemake keeps it); the rerun resumes from its last finished epoch.
# Resources: gpu=1 unless training.device is "cpu" (a resource not limited with
# --resources is unconstrained, so `snakemake --cores 2` runs these locally).
# The command prefix comes in as a param: PHOTOZ holds shell braces
# (${PYTHONPATH:+...}) that Snakemake's shell formatting would try to expand.
import json

TRAINING = config["training"]
TRAIN_GPU = 0 if TRAINING["device"] == "cpu" else 1


def _network_name(trial):
    return config["trials"][trial].get("network", TRAINING["network"])


def _train_cfg(wildcards):
    return json.dumps({"training": TRAINING, "network": config["networks"][_network_name(wildcards.trial)],
                       "bins": config["bins"]}, sort_keys=True)


def _trial_json(wildcards):
    return json.dumps(config["trials"][wildcards.trial], sort_keys=True)


rule train:
    input:
        manifest="results/shards/manifest.json",
    output:
        checkpoint="results/models/{trial}/fold{fold}/seed{seed}/checkpoint.pt",
        best="results/models/{trial}/fold{fold}/seed{seed}/best.pt",
        metrics="results/models/{trial}/fold{fold}/seed{seed}/metrics.csv",
    log:
        "logs/train/{trial}/fold{fold}/seed{seed}.log",
    params:
        photoz=PHOTOZ,
        cfg=_train_cfg,
        trial=_trial_json,
        master_seed=config["seed"],
        shards=lambda w, input: str(Path(input.manifest).parent),
    threads: TRAINING["num_threads"]
    resources:
        gpu=TRAIN_GPU,
        mem_mb=TRAINING["mem_mb"],
        runtime=TRAINING["runtime_min"],
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.photoz} train --shards {params.shards} --trial {wildcards.trial} --trial-json {params.trial:q}"
        " --fold {wildcards.fold} --seeds {wildcards.seed} --master-seed {params.master_seed}"
        " --config-json {params.cfg:q} --out-root results/models 2> {log}"


rule predict:
    input:
        manifest="results/shards/manifest.json",
        model=lambda w: f"results/models/{w.trial}/fold{w.fold}/seed{w.seed}/"
        + ("best.pt" if TRAINING["predict_from"] == "best" else "checkpoint.pt"),
    output:
        "results/predictions/{trial}/fold{fold}/seed{seed}.npz",
    log:
        "logs/predict/{trial}/fold{fold}/seed{seed}.log",
    params:
        photoz=PHOTOZ,
        trial=_trial_json,
        shards=lambda w, input: str(Path(input.manifest).parent),
        device=TRAINING["device"],
    threads: TRAINING["num_threads"]
    resources:
        gpu=TRAIN_GPU,
        mem_mb=TRAINING["mem_mb"],
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.photoz} predict --checkpoint {input.model} --shards {params.shards} --trial-json {params.trial:q}"
        " --fold {wildcards.fold} --device {params.device} --num-threads {threads} --out {output}"
        " 2> {log}"


rule ensemble:
    input:
        manifest="results/shards/manifest.json",
        predictions=lambda w: expand(
            "results/predictions/{trial}/fold{fold}/seed{seed}.npz",
            trial=w.trial, fold=trial_folds(w.trial), seed=trial_seeds(w.trial),
        ),
    output:
        "results/ensemble/{trial}.parquet",
    log:
        "logs/ensemble/{trial}.log",
    params:
        photoz=PHOTOZ,
        bins=json.dumps(config["bins"], sort_keys=True),
        catalog=lambda w, input: str(Path(input.manifest).parent / "catalog.parquet"),
    resources:
        mem_mb=4000,
    conda:
        "../../envs/train.yaml"
    shell:
        "{params.photoz} ensemble {input.predictions} --catalog {params.catalog} --bins-json {params.bins:q}"
        " --out {output} 2> {log}"
