# rules of the paper family (see docs/dataflow.md, Sect. 5):
#   paper_variables  every number of the text -> results/paper/variables.tex
#   paper            latexmk paper/ms.tex      -> paper/ms.pdf (aa.cls if installed, else paper/aa-fallback.cls)
# Each command gets the files its rule declares. The paper's sources are found
# beside the Snakefile (so `snakemake --directory DIR` works); its results are
# those of the working directory (\resultsdir = the folder of results/paper/).


rule paper_variables:
    input:
        table1="results/table1.csv",
        table2="results/table2.csv",
        tableA1="results/tableA1.csv",
        catalog="results/catalog.parquet",
        failures="results/cutouts/failures.csv",
        losses="results/cutouts/losses.json",
        manifest="results/shards/manifest.json",
        zone="results/zone/zone.json",
        zone_validation=["results/zone/validation.json"] if MOCK else [],
        learning_curve=[LEARNING_CURVE_CSV] if learning_curve_trials() else [],
        # the SWarp check of a native run (cutouts.smk: SWARP_CHECK)
        swarp_check=["results/cutouts/swarp_check.json"] if SWARP_CHECK else [],
        # the reddening sentence: the main and no-E(B-V) ensembles (photoz.trials.noebv_trial)
        ensemble=reddening_ensembles().get("ensemble", []),
        ensemble_noebv=reddening_ensembles().get("ensemble_noebv", []),
        # the code that writes the sentences: a changed wording is a changed paper (as a figure's module)
        code=[str(ROOT / "src" / "photoz" / "wording.py"), str(ROOT / "src" / "photoz" / "paper.py")],
    output:
        "results/paper/variables.tex",
    log:
        "logs/paper_variables/paper_variables.log",
    params:
        # the rerun trigger: the config without its execution keys
        settings=json.dumps(result_settings(config), sort_keys=True),
        # the whole config (derived, not a trigger), whose digest the paper prints
        cfg=config_json(*config),
        files=lambda w, input: " ".join(f"--{k} {shlex.quote(str(p))}" for k, p in input.items() if p and k != "code"),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/paper.yaml"
    shell:
        "python -m photoz paper variables {params.files} --config-json {params.cfg:q} --out {output:q} --log {log:q}"


rule paper:
    input:
        tex=str(ROOT / "paper" / "ms.tex"),
        cls=str(ROOT / "paper" / "aa-fallback.cls"),
        variables="results/paper/variables.tex",
        tables=expand("results/tables/{t}.tex",
                      t=["table1", "table2", "tableA1"] + (["learning_curve"] if learning_curve_trials() else [])),
        figures=expand("results/figures/{name}.pdf", name=run_figures()),
    output:
        report("paper/ms.pdf", category="Paper"),
    log:
        "logs/paper/paper.log",
    params:
        results=lambda w, input: str(Path(input.variables).parent.parent),
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/paper.yaml"
    shell:
        "python -m photoz paper build --tex {input.tex:q} --results {params.results:q} --out {output:q} --log {log:q}"
