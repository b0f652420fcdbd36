"""Per-galaxy cutouts: stamps, SWarp and the native Lanczos-3 resampler."""
