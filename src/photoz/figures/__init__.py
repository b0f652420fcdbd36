"""The paper's figures: one module per figure (``main(argv)``), shared style and helpers in ``common``.

``python -m photoz figure NAME [options]`` runs one of them; ``FIGURES`` lists them.
"""

FIGURES = {
    "fig01_sky_and_nz": "photoz.figures.fig01_sky_and_nz",
    "fig02_gallery": "photoz.figures.fig02_gallery",
    "fig04_architecture": "photoz.figures.fig04_architecture",
    "fig05_protocol": "photoz.figures.fig05_protocol",
    "fig06_dz": "photoz.figures.fig06_dz",
    "fig07_zphot_zspec": "photoz.figures.fig07_zphot_zspec",
    "fig08_bias": "photoz.figures.fig08_bias",
    "fig09_pdfs": "photoz.figures.fig09_pdfs",
    "fig10_pit": "photoz.figures.fig10_pit",
    "fig11_ebv_inclination": "photoz.figures.fig11_ebv_inclination",
    "fig12_sky_maps": "photoz.figures.fig12_sky_maps",
    "fig13_mean_pdfs": "photoz.figures.fig13_mean_pdfs",
    "fig14_snr_psf": "photoz.figures.fig14_snr_psf",
    "figA_image_quality": "photoz.figures.figA_image_quality",
}
