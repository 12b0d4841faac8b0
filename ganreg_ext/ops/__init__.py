"""The registered ops, one per kernel, per family (``gradnorm``, ``noise``, ``consistency``,
``augment``, ``bias_act``, ``upfirdn2d``, ``ada``): each family module holds the schemas, the fake kernels and the autograd of the
Triton ops. :mod:`.native` loads ``ganreg_ext._C`` (the ``ganreg_C`` ops: CPU/CUDA kernels and
C++ autograd) and registers their fakes; :mod:`.triton` defines the ``ganreg_triton`` ops on the
Triton launchers of :mod:`ganreg_ext.triton_kernels`."""

from . import ada, augment, bias_act, consistency, gradnorm, noise, upfirdn2d

FAMILIES = {
    "gradnorm": gradnorm,
    "noise": noise,
    "consistency": consistency,
    "augment": augment,
    "bias_act": bias_act,
    "upfirdn2d": upfirdn2d,
    "ada": ada,
}
