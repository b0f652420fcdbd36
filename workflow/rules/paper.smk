# rules of the paper family (see docs/dataflow.md, Sect. 5):
#   paper_variables  every number of the text -> results/paper/variables.tex
#   paper            latexmk paper/ms.tex      -> paper/ms.pdf (aa.cls if installed, else paper/aa-fallback.cls)


rule paper_variables:
    input:
        table1="results/table1.csv",
        table2="results/table2.csv",
        tableA1="results/tableA1.csv",
        catalog="results/catalog.parquet",
        failures="results/cutouts/failures.csv",
        losses="results/cutouts/losses.json",
        manifest="results/shards/manifest.json",
    output:
        "results/paper/variables.tex",
    log:
        "logs/paper_variables/paper_variables.log",
    params:
        cfg=json.dumps(config),
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../envs/paper.yaml"
    shell:
        "python -m photoz paper variables --results results --config-json {params.cfg:q} --out {output} --log {log}"


rule paper:
    input:
        tex="paper/ms.tex",
        cls="paper/aa-fallback.cls",
        variables="results/paper/variables.tex",
        tables=expand("results/tables/{t}.tex", t=["table1", "table2", "tableA1"]),
        figures=expand("results/figures/{name}.pdf", name=FIGURES),
    output:
        report("paper/ms.pdf", category="Paper"),
    log:
        "logs/paper/paper.log",
    resources:
        mem_mb=2000,
        runtime=20,
    conda:
        "../../envs/paper.yaml"
    shell:
        "python -m photoz paper build --tex {input.tex} --results results --out {output} --log {log}"
