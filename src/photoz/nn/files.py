"""The files of one trained member (``results/models/{trial}/fold{f}/seed{s}/``): their names, in one place.

No imports, so the Snakefile reads them at parse time (``workflow/rules/train.smk``) without torch.
"""

CHECKPOINT = "checkpoint.pt"  # the last epoch: weights, optimizer, RNG states (written at the end, from resume.pt)
BEST = "best.pt"              # the weights of the epoch of least validation loss
AVERAGE = "average.pt"        # the mean weights of the last epochs (training.average_fraction)
METRICS = "metrics.csv"       # one row per epoch
RESUME = "resume.pt"          # a running job's rolling checkpoint (not a declared output)

#: training.predict_from -> the member file whose weights predict the PDFs
WEIGHTS_FILES = {"best": BEST, "last": CHECKPOINT, "average": AVERAGE}
