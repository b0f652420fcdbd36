"""Training dataset: shards, manifest and splits."""

from .shards import verify_manifest, open_shards  # noqa: F401
from .splits import trial_indices  # noqa: F401
