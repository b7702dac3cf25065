"""The engine that trains, tests and compares: options, run folders, checkpoints, the trainer,
evaluation, the tester, the comparison, tiling, distributed set-up, losses and visualisation.

It builds on :mod:`metrics`, :mod:`models` and :mod:`data`; only the entry scripts (train.py,
test.py, predict.py, bench/) and :mod:`charts` import it. Importing it turns on transparent huge
pages for PyTorch's CPU allocations (:func:`utils.memory.use_huge_pages`): large tensors allocate
faster.
"""

from utils.memory import use_huge_pages

use_huge_pages()
