"""The CNN of Pasquet et al. (2019): model, data, training, prediction, ensembles.

Modules (the first four import only torch, numpy, the standard library and the
numpy-only ``photoz.metrics`` and ``photoz.bins``, so they run on a bare GPU
machine):

``model``     the published inception network (27,596,372 parameters) as one
              plain module, its variants (``width``, ``dense``, ``ebv_input``),
              ``Members`` (several trained together), ``layer_table`` (Table A1, Fig. 4)
``data``      memory-mapped shards, a trial's split, device-resident images
``train``     the resumable training loop (``python -m photoz train``); on a GPU all
              members' steps in one CUDA graph, one stream each
``bench``     throughput and FLOPs of the loop's step and of inference (``benchmarks/bench_train.py``)
``predict``   PDFs of the test galaxies (``python -m photoz predict``)
``ensemble``  averaged PDFs per trial (``python -m photoz ensemble``; Parquet via pyarrow)

PDF statistics (z_phot, PIT, CRPS, widths, sigma_MAD) come from ``photoz.metrics``
and the bin grid from ``photoz.bins``: one definition each for the whole project.
"""
