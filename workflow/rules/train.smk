# rules of the train family (see docs/dataflow.md, section 4):
#   train:    one ensemble member (trial, fold, seed) -> results/models/{trial}/fold{fold}/seed{seed}/
#   predict:  that member's 180-bin PDF of every test galaxy of the fold
#   ensemble: all folds and members of a trial -> results/ensemble/{trial}.parquet
#
# A killed train job leaves results/models/.../resume.pt (not a declared output,
# so Snakemake keeps it); the rerun resumes from its last finished epoch.
# Resources: gpu=1 unless training.device is "cpu" (a resource not limited with
# --resources is unconstrained, so `snakemake --cores 2` runs these locally).
# params.settings (the training keys that change the models, the network, the
# bins, the trial) is the rerun trigger; params.cfg (the same with the
# execution keys: device, threads, speed settings, resources) is derived and
# never reruns a job. Each command gets the paths the rule declares: the
# shards manifest, the member's model, the catalog.


# torch.compile's on-disk cache, shared by the training jobs of a run (in its working
# directory, so a cluster's nodes share it too): only the first job compiles each
# network shape (42 s for the full network on an H200), later ones load it (6 s).
# A cache, not an output: deleting it costs one compilation, never a result.
COMPILE_CACHE = "results/.cache/torchinductor"


# One job per member, or (training.stack_members, a speed setting) one per
# (trial, fold) training all its members: both run the same command with the
# same settings, so switching between them redoes no work. The rule is written
# once: plain, it is `train` with a {seed} wildcard; stacked, one rule per trial
# (`train_stacked_<trial>`, since its outputs list the trial's seeds), on a GPU
# all members' steps side by side in one CUDA graph (train_rules(), common.smk).
for _rule_name, _trial in train_rules().items():

    rule:
        name:
            _rule_name
        input:
            manifest="results/shards/manifest.json",
            catalog="results/shards/catalog.parquet",
        output:
            checkpoint=_member_files("checkpoint.pt", _trial),
            best=_member_files("best.pt", _trial),
            average=_member_files("average.pt", _trial),
            metrics=_member_files("metrics.csv", _trial),
        wildcard_constraints:
            trial=".+" if _trial is None else re.escape(_trial),
        log:
            "logs/train/{trial}/fold{fold}/" + ("seed{seed}.log" if _trial is None else "stacked.log"),
        params:
            settings=lambda w: _train_settings(w.trial),
            cfg=lambda w, threads: _train_config(w.trial)(w, threads),
            trial=_trial_json,
            trial_name=lambda w: w.trial,
            master_seed=config["seed"],
            seeds=_output_seeds,
            shards=lambda w, input: str(Path(input.manifest).parent),
            out_root=_models_root,
            compile_cache=COMPILE_CACHE,
        threads: TRAINING["num_threads"]
        priority: lambda w: train_priority(w.trial, len(trial_seeds(w.trial)) if TRAINING["stack_members"] else 1)
        resources:
            gpu=TRAIN_GPU,
            mem_mb=TRAINING["mem_mb"],
            runtime=TRAINING["runtime_min"],
        conda:
            "../../envs/train.yaml"
        shell:
            "python -m photoz train --shards {params.shards:q} --trial {params.trial_name} --trial-json {params.trial:q}"
            " --fold {wildcards.fold} --seeds {params.seeds} --master-seed {params.master_seed}"
            " --config-json {params.cfg:q} --out-root {params.out_root:q} --compile-cache {params.compile_cache:q} 2> {log:q}"


rule predict:
    input:
        manifest="results/shards/manifest.json",
        catalog="results/shards/catalog.parquet",
        model=lambda w: f"results/models/{w.trial}/fold{w.fold}/seed{w.seed}/{WEIGHTS_FILES[TRAINING['predict_from']]}",
    output:
        "results/predictions/{trial}/fold{fold}/seed{seed}.npz",
    log:
        "logs/predict/{trial}/fold{fold}/seed{seed}.log",
    params:
        trial=_trial_json,
        shards=lambda w, input: str(Path(input.manifest).parent),
        device=lambda w, threads: TRAINING["device"],
        batch=lambda w, threads: TRAINING["eval_batch_size"],
    threads: TRAINING["num_threads"]
    resources:
        gpu=TRAIN_GPU,
        mem_mb=TRAINING["mem_mb"],
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m photoz predict --checkpoint {input.model} --shards {params.shards} --trial-json {params.trial:q}"
        " --fold {wildcards.fold} --device {params.device} --num-threads {threads} --batch-size {params.batch}"
        " --out {output}"
        " 2> {log}"


rule ensemble:
    input:
        catalog="results/shards/catalog.parquet",
        predictions=lambda w: expand(
            "results/predictions/{trial}/fold{fold}/seed{seed}.npz",
            trial=w.trial, fold=trial_folds(w.trial), seed=trial_seeds(w.trial),
        ),
    output:
        "results/ensemble/{trial}.parquet",
    log:
        "logs/ensemble/{trial}.log",
    params:
        n_bins=config["bins"]["n"],
        z_min=config["bins"]["z_min"],
        z_max=config["bins"]["z_max"],
    resources:
        mem_mb=4000,
    conda:
        "../../envs/train.yaml"
    shell:
        "python -m photoz ensemble {input.predictions:q} --catalog {input.catalog} --n-bins {params.n_bins}"
        " --z-min {params.z_min} --z-max {params.z_max}"
        " --out {output} 2> {log}"
