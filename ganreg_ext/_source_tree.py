"""A source checkout without an install (e.g. ``setup.py build_ext --inplace`` on a GPU machine):
``ganreg_ext.triton_kernels`` is the repository-root folder ``triton_kernels/``. Wheels and editable
installs map it through setup.py's ``package_dir``; this finder is appended last to
``sys.meta_path``, so it answers only when no installed copy does."""

from __future__ import annotations

import importlib.util
import os
import sys

_PKG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "triton_kernels")
_NAME = __package__ + ".triton_kernels"


class _Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        init = os.path.join(_PKG, "__init__.py")
        if name != _NAME or not os.path.isfile(init):
            return None
        return importlib.util.spec_from_file_location(name, init, submodule_search_locations=[_PKG])


if not any(isinstance(f, type) and f.__name__ == "_Finder" and f.__module__ == __name__ for f in sys.meta_path):
    sys.meta_path.append(_Finder)
