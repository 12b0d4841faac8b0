"""pytest plugin for ``python -m benchmarks gpu --dry-run`` on a machine without a GPU: collect
(never run) the tests as a GPU machine would, by answering ``torch.cuda.is_available()`` with True
before the test modules compute their backend parametrizations."""

import torch

torch.cuda.is_available = lambda: True
