"""ganreg_ext: fused GAN regularizers (R1/R2, WGAN-GP, Roth, path length, CR/bCR/zCR, DiffAugment,
instance noise, LeCam) with reference, CPU C++, CUDA and Triton backends. See docs/semantics.md and README.md."""

from . import _source_tree  # noqa: F401  (ganreg_ext.triton_kernels in a source checkout)
from ._dispatch import (
    BackendUnavailable,
    BackendWarning,
    available_backends,
    backend_info,
    get_backend,
    set_backend,
    use_backend,
)
from .ada import AdaptiveAugment, ada_augment, sample_ada_params
from .augment import cr_augment, diff_augment, sample_cr_params, sample_diffaug_params
from .bias_act import bias_act
from .consistency import bcr_loss, consistency_loss, perturb_latent, zcr_discriminator_loss, zcr_generator_loss
from .gradnorm import (
    dragan_perturb,
    grad_sqnorm,
    gradient_penalty,
    input_gradients,
    r1_loss,
    r1_penalty,
    r2_penalty,
    roth_penalty,
    wgan_interpolate,
)
from .losses import (
    LeCamRegularizer,
    hinge_d_loss,
    hinge_g_loss,
    lazy_regularization,
    lsgan_d_loss,
    lsgan_g_loss,
    ns_d_loss,
    ns_g_loss,
    wgan_d_loss,
    wgan_g_loss,
)
from .memory import cpu_cache_limit, cpu_cache_stats, empty_cpu_cache, reset_cpu_cache_peak, set_cpu_cache_limit
from .noise import InstanceNoise, instance_noise
from .pathlength import PathLengthRegularizer, path_length_noise, path_length_noise_dot, path_length_penalty
from .upfirdn2d import downsample2d, filter2d, filtered_lrelu, setup_filter, upfirdn2d, upsample2d

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable", "BackendWarning", "available_backends", "backend_info", "get_backend", "set_backend",
    "use_backend", "cr_augment", "diff_augment", "sample_cr_params", "sample_diffaug_params", "bcr_loss",
    "consistency_loss", "perturb_latent", "zcr_discriminator_loss", "zcr_generator_loss", "dragan_perturb",
    "grad_sqnorm", "gradient_penalty", "input_gradients", "r1_loss", "r1_penalty", "r2_penalty", "roth_penalty",
    "wgan_interpolate", "LeCamRegularizer", "hinge_d_loss", "hinge_g_loss", "lazy_regularization", "lsgan_d_loss",
    "lsgan_g_loss", "ns_d_loss", "ns_g_loss", "wgan_d_loss", "wgan_g_loss", "InstanceNoise", "instance_noise",
    "PathLengthRegularizer", "path_length_noise", "path_length_noise_dot", "path_length_penalty",
    "AdaptiveAugment", "ada_augment", "sample_ada_params",
    "bias_act", "upfirdn2d", "setup_filter", "upsample2d", "downsample2d", "filter2d", "filtered_lrelu",
    "cpu_cache_stats", "empty_cpu_cache", "reset_cpu_cache_peak", "set_cpu_cache_limit", "cpu_cache_limit",
]  # fmt: skip
