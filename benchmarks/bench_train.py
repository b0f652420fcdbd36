#!/usr/bin/env python
"""Training and inference throughput of the published CNN (see photoz.nn.bench).

    python benchmarks/bench_train.py                    # on the GPU: the real numbers
    python benchmarks/bench_train.py --tiny             # a quick check of the script on a CPU
    python benchmarks/bench_train.py --json out.json | tee benchmarks/bench_train_<gpu>.txt

Needs only torch and numpy (runs on a bare GPU machine with ``PYTHONPATH=src``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from photoz.nn.bench import main  # noqa: E402

if __name__ == "__main__":
    main()
