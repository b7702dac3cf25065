"""The engine that trains, tests and compares: options, run folders, checkpoints, the trainer,
evaluation, the tester, the comparison, tiling, distributed set-up, losses and visualisation.

It builds on :mod:`metrics`, :mod:`models` and :mod:`data`; only the entry scripts (train.py,
test.py, predict.py, bench/) and :mod:`charts` import it. Importing it turns on transparent huge
pages for PyTorch's CPU allocations (``THP_MEM_ALLOC_ENABLE``, read at the first large allocation):
large tensors allocate faster.
"""

import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
