# rules of the figures family (see docs/dataflow.md, Sect. 5): one `figure` rule
# on a {name} wildcard, one job per figure of photoz.figures.FIGURES, running
# `python -m photoz figure NAME` (src/photoz/figures/NAME.py) with the config
# sections the module declares it reads (CONFIG), and writing
# results/figures/NAME.pdf and .png; the PNGs are report() outputs for
# `snakemake --report`. A figure's inputs are those its module declares
# (INPUTS) and the module's own source file, so editing one figure's code
# rebuilds that figure and the paper only. The learning curve's figure is drawn
# only when the config has learning_curve trials (run_figures()).


rule figures:
    input:
        expand("results/figures/{name}.{ext}", name=run_figures(), ext=["pdf", "png"]),


rule figure:
    input:
        unpack(figure_input_files),
    output:
        pdf="results/figures/{name}.pdf",
        png=report("results/figures/{name}.png", category="Figures"),
    log:
        "logs/figure/{name}.log",
    params:
        # the rerun trigger: the config sections the figure reads (its CONFIG), without their execution keys
        settings=lambda w: json.dumps({s: result_settings(config, s) for s in declared_config(w.name)}, sort_keys=True),
        # those sections for the command (derived, not a trigger)
        cfg=lambda w, threads: json.dumps({s: config[s] for s in declared_config(w.name)}, sort_keys=True),
        args=lambda w, input: figure_args(dict(input.items())),
    wildcard_constraints:
        name="|".join(FIGURES),
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure {wildcards.name} {params.args} --config-json {params.cfg:q} --out {output.pdf:q} --log {log:q}"
