# rules of the figures family (see docs/dataflow.md, Sect. 5): one rule per figure,
# each running `python -m photoz figure NAME` (src/photoz/figures/NAME.py) and writing
# results/figures/NAME.pdf and .png; the PNGs are report() outputs for `snakemake --report`.


rule figures:
    input:
        expand("results/figures/{name}.{ext}", name=FIGURES, ext=["pdf", "png"]),


rule fig01_sky_and_nz:
    input:
        catalog="results/catalog.parquet",
    output:
        pdf="results/figures/fig01_sky_and_nz.pdf",
        png=report("results/figures/fig01_sky_and_nz.png", category="Figures"),
    log:
        "logs/fig01_sky_and_nz/fig01_sky_and_nz.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig01_sky_and_nz {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig02_gallery:
    input:
        catalog="results/shards/catalog.parquet",
        manifest="results/shards/manifest.json",
    output:
        pdf="results/figures/fig02_gallery.pdf",
        png=report("results/figures/fig02_gallery.png", category="Figures"),
    log:
        "logs/fig02_gallery/fig02_gallery.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig02_gallery {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig04_architecture:
    output:
        pdf="results/figures/fig04_architecture.pdf",
        png=report("results/figures/fig04_architecture.png", category="Figures"),
    log:
        "logs/fig04_architecture/fig04_architecture.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig04_architecture {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig05_protocol:
    output:
        pdf="results/figures/fig05_protocol.pdf",
        png=report("results/figures/fig05_protocol.png", category="Figures"),
    log:
        "logs/fig05_protocol/fig05_protocol.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig05_protocol {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig06_dz:
    input:
        ensemble="results/ensemble/main.parquet",
    output:
        pdf="results/figures/fig06_dz.pdf",
        png=report("results/figures/fig06_dz.png", category="Figures"),
    log:
        "logs/fig06_dz/fig06_dz.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig06_dz {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig07_zphot_zspec:
    input:
        ensemble="results/ensemble/main.parquet",
        catalog="results/shards/catalog.parquet",
    output:
        pdf="results/figures/fig07_zphot_zspec.pdf",
        png=report("results/figures/fig07_zphot_zspec.png", category="Figures"),
    log:
        "logs/fig07_zphot_zspec/fig07_zphot_zspec.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig07_zphot_zspec {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig08_bias:
    input:
        ensemble="results/ensemble/main.parquet",
        catalog="results/shards/catalog.parquet",
    output:
        pdf="results/figures/fig08_bias.pdf",
        png=report("results/figures/fig08_bias.png", category="Figures"),
    log:
        "logs/fig08_bias/fig08_bias.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig08_bias {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig09_pdfs:
    input:
        ensemble="results/ensemble/main.parquet",
        catalog="results/shards/catalog.parquet",
        manifest="results/shards/manifest.json",
    output:
        pdf="results/figures/fig09_pdfs.pdf",
        png=report("results/figures/fig09_pdfs.png", category="Figures"),
    log:
        "logs/fig09_pdfs/fig09_pdfs.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig09_pdfs {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig10_pit:
    input:
        ensemble="results/ensemble/main.parquet",
    output:
        pdf="results/figures/fig10_pit.pdf",
        png=report("results/figures/fig10_pit.png", category="Figures"),
    log:
        "logs/fig10_pit/fig10_pit.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig10_pit {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig11_ebv_inclination:
    input:
        ensemble="results/ensemble/main.parquet",
        ensemble_noebv="results/ensemble/noebv.parquet",
        catalog="results/shards/catalog.parquet",
    output:
        pdf="results/figures/fig11_ebv_inclination.pdf",
        png=report("results/figures/fig11_ebv_inclination.png", category="Figures"),
    log:
        "logs/fig11_ebv_inclination/fig11_ebv_inclination.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig11_ebv_inclination {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig12_sky_maps:
    input:
        ensemble="results/ensemble/main.parquet",
        catalog="results/shards/catalog.parquet",
    output:
        pdf="results/figures/fig12_sky_maps.pdf",
        png=report("results/figures/fig12_sky_maps.png", category="Figures"),
    log:
        "logs/fig12_sky_maps/fig12_sky_maps.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig12_sky_maps {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig13_mean_pdfs:
    input:
        ensemble="results/ensemble/main.parquet",
        catalog="results/shards/catalog.parquet",
    output:
        pdf="results/figures/fig13_mean_pdfs.pdf",
        png=report("results/figures/fig13_mean_pdfs.png", category="Figures"),
    log:
        "logs/fig13_mean_pdfs/fig13_mean_pdfs.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig13_mean_pdfs {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule fig14_snr_psf:
    input:
        ensemble="results/ensemble/main.parquet",
        catalog="results/shards/catalog.parquet",
    output:
        pdf="results/figures/fig14_snr_psf.pdf",
        png=report("results/figures/fig14_snr_psf.png", category="Figures"),
    log:
        "logs/fig14_snr_psf/fig14_snr_psf.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure fig14_snr_psf {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"


rule figA_image_quality:
    input:
        ensemble="results/ensemble/main.parquet",
        catalog="results/shards/catalog.parquet",
        failures="results/cutouts/failures.csv",
    output:
        pdf="results/figures/figA_image_quality.pdf",
        png=report("results/figures/figA_image_quality.png", category="Figures"),
    log:
        "logs/figA_image_quality/figA_image_quality.log",
    params:
        cfg=FIG_CONFIG,
        args=lambda w, input: figure_args(dict(input.items())),
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../envs/figures.yaml"
    shell:
        "python -m photoz figure figA_image_quality {params.args} --config-json {params.cfg:q} --out {output.pdf} --log {log}"
