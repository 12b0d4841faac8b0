"""``torch.library`` registration of the fused ops: schema, fake kernel and autograd, once for all
backends. Each op takes the concrete backend name as its last argument and calls that backend's
kernel from :mod:`ganreg_ext._dispatch`; every backward is itself a registered op with its own
autograd, so double backward works on every backend."""

from . import augment, consistency, gradnorm, noise  # noqa: F401
