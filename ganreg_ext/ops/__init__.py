"""The registered ops, one per kernel, per family (``gradnorm``, ``noise``, ``consistency``,
``augment``): each family module holds the schemas, the fake kernels and the autograd of the
Triton ops. :mod:`.native` loads ``ganreg_ext._C`` (the ``ganreg_C`` ops: CPU/CUDA kernels and
C++ autograd) and registers their fakes; :mod:`.triton` defines the ``ganreg_triton`` ops on the
Triton launchers of :mod:`ganreg_ext.triton_kernels`."""

from . import augment, consistency, gradnorm, noise

FAMILIES = {"gradnorm": gradnorm, "noise": noise, "consistency": consistency, "augment": augment}
