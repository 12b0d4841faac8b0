"""docs/semantics.md#notation-and-contracts-shared-by-every-op contracts on bad input, for every public function and every backend
(the one bad-input table of the test suite: regularizers, bias_act, the upfirdn2d family, ADA).

* Bad arguments raise ``ValueError``/``TypeError`` (``BackendUnavailable`` for backends) whose
  message names the argument, *before any kernel runs* (a dispatch mode fails on any kernel call).
* Every case runs on the backend's device (``torch.device`` context: the cases' factory calls land
  there); "mixed devices" pairs it with another device.
* NaN/Inf in the inputs propagate to the outputs (never masked to a finite number).
* Nothing the caller owns is modified in place (inputs compared before/after, ``pl_mean`` included).
"""

from __future__ import annotations

import math

import pytest
import torch

import ganreg_ext as gx
from ganreg_ext.nvlabs import bias_act as nv_bias_act
from ganreg_ext.nvlabs import upfirdn2d as nv_upfirdn2d
from helpers import CONS, CR, DA, GN, NOISE, every_backend, need, raises_before_any_kernel

OTHER = "other"  # the other device of a "mixed devices" case, resolved when the case runs


def _device(device):
    """``None``: the default device (the test's); ``OTHER``: a GPU/the CPU for a CPU/GPU test, else meta."""
    if device != OTHER:
        return device
    return "cpu" if torch.get_default_device().type != "cpu" else "cuda" if torch.cuda.is_available() else "meta"


def r(*shape, dtype=torch.float32, device=None):
    return torch.randn(shape, device=_device(device)).to(dtype)


def img(b=2, c=3, h=8, w=8, **kw):
    return r(b, c, h, w, **kw)


def dparams(b=2, h=8, w=8, device=None):
    return gx.sample_diffaug_params(b, h, w, device=_device(device))


def cparams(b=2, h=8, w=8, device=None):
    return gx.sample_cr_params(b, h, w, device=_device(device))


def ada_params(b=2, h=8, w=8):
    return gx.sample_ada_params(b, h, w, 1.0, "bgc")


E = (ValueError, TypeError)
# (id, call, expected exception types, text that must appear in the message)
CASES = [
    # ---- gradient-norm family
    ("grad_sqnorm/not-a-tensor", lambda: gx.grad_sqnorm(3.0), E, "grads"),
    ("grad_sqnorm/empty-list", lambda: gx.grad_sqnorm([]), E, "grads"),
    ("grad_sqnorm/rank0", lambda: gx.grad_sqnorm(torch.tensor(1.0)), E, "grads"),
    ("grad_sqnorm/int", lambda: gx.grad_sqnorm(torch.ones(2, 3, dtype=torch.int32)), E, "grads"),
    ("grad_sqnorm/bool", lambda: gx.grad_sqnorm(torch.ones(2, 3, dtype=torch.bool)), E, "grads"),
    ("grad_sqnorm/int64-in-list", lambda: gx.grad_sqnorm([r(2, 3), torch.ones(2, 3, dtype=torch.int64)]), E, "grads[1]"),
    ("grad_sqnorm/empty-batch", lambda: gx.grad_sqnorm(r(0, 3)), E, "grads"),
    ("grad_sqnorm/batch-mismatch", lambda: gx.grad_sqnorm([r(2, 3), r(3, 3)]), E, "grads"),
    ("grad_sqnorm/mixed-devices", lambda: gx.grad_sqnorm([r(2, 3), r(2, 3, device=OTHER)]), E, "grads"),
    ("grad_sqnorm/inv_scale<0", lambda: gx.grad_sqnorm(r(2, 3), inv_scale=-1.0), E, "inv_scale"),
    ("grad_sqnorm/inv_scale=0", lambda: gx.grad_sqnorm(r(2, 3), inv_scale=0.0), E, "inv_scale"),
    ("grad_sqnorm/inv_scale-str", lambda: gx.grad_sqnorm(r(2, 3), inv_scale="x"), E, "inv_scale"),
    ("r1_penalty/gamma<0", lambda: gx.r1_penalty(r(2, 3), gamma=-1.0), E, "gamma"),
    ("r1_penalty/gamma-nan", lambda: gx.r1_penalty(r(2, 3), gamma=float("nan")), E, "gamma"),
    ("r1_penalty/reduction", lambda: gx.r1_penalty(r(2, 3), reduction="avg"), E, "reduction"),
    ("r1_penalty/rank0", lambda: gx.r1_penalty(torch.tensor(2.0)), E, "grads"),
    ("r1_penalty/int", lambda: gx.r1_penalty(torch.ones(2, 3, 4, 4, dtype=torch.uint8)), E, "grads"),
    ("r1_penalty/empty-batch", lambda: gx.r1_penalty(r(0, 3, 4, 4)), E, "grads"),
    ("r1_penalty/list-batch-mismatch", lambda: gx.r1_penalty([r(2, 3, 4, 4), r(4, 8)]), E, "grads"),
    ("r1_penalty/mixed-devices", lambda: gx.r1_penalty([r(2, 3), r(2, 3, device=OTHER)]), E, "grads"),
    ("r2_penalty/gamma<0", lambda: gx.r2_penalty(r(2, 3), gamma=-0.5), E, "gamma"),
    ("r2_penalty/reduction", lambda: gx.r2_penalty(r(2, 3), reduction="max"), E, "reduction"),
    ("r2_penalty/list-batch-mismatch", lambda: gx.r2_penalty([r(2, 3), r(1, 3)]), E, "grads"),
    ("gradient_penalty/weight<0", lambda: gx.gradient_penalty(r(2, 3), weight=-10.0), E, "weight"),
    ("gradient_penalty/eps<0", lambda: gx.gradient_penalty(r(2, 3), eps=-1e-8), E, "eps"),
    ("gradient_penalty/reduction", lambda: gx.gradient_penalty(r(2, 3), reduction="batchmean"), E, "reduction"),
    ("gradient_penalty/int", lambda: gx.gradient_penalty(torch.ones(2, 3, dtype=torch.int16)), E, "grads"),
    ("gradient_penalty/empty-batch", lambda: gx.gradient_penalty(r(0, 5)), E, "grads"),
    ("gradient_penalty/list-batch-mismatch", lambda: gx.gradient_penalty([r(2, 3), r(3, 3)]), E, "grads"),
    ("roth_penalty/gamma<0", lambda: gx.roth_penalty(r(2, 3), r(2), r(2, 3), r(2), gamma=-0.1), E, "gamma"),
    ("roth_penalty/logits_real-batch", lambda: gx.roth_penalty(r(2, 3), r(3), r(2, 3), r(2)), E, "logits_real"),
    ("roth_penalty/logits_fake-batch", lambda: gx.roth_penalty(r(2, 3), r(2), r(2, 3), r(5, 1)), E, "logits_fake"),
    ("roth_penalty/logits_real-rank", lambda: gx.roth_penalty(r(2, 3), r(2, 1, 1), r(2, 3), r(2)), E, "logits_real"),
    (
        "roth_penalty/logits_fake-int",
        lambda: gx.roth_penalty(r(2, 3), r(2), r(2, 3), torch.ones(2, dtype=torch.int64)),
        E,
        "logits_fake",
    ),
    ("roth_penalty/logits-mixed-devices", lambda: gx.roth_penalty(r(2, 3), r(2, device=OTHER), r(2, 3), r(2)), E, "logits_real"),
    ("roth_penalty/grads_fake-mismatch", lambda: gx.roth_penalty(r(2, 3), r(2), [r(2, 3), r(3, 3)], r(2)), E, "grads_fake"),
    ("roth_penalty/grads_real-empty", lambda: gx.roth_penalty(r(0, 3), r(0), r(2, 3), r(2)), E, "grads_real"),
    ("input_gradients/outputs-int", lambda: gx.input_gradients(torch.ones(2, dtype=torch.int64), r(2)), E, "outputs"),
    ("input_gradients/outputs-list", lambda: gx.input_gradients([r(2)], r(2)), E, "outputs"),
    ("r1_loss/logits-int", lambda: gx.r1_loss(torch.ones(2, dtype=torch.int64), r(2, 3)), E, "outputs"),
    ("wgan_interpolate/shape", lambda: gx.wgan_interpolate(img(), img(3)), E, "fake"),
    ("wgan_interpolate/int", lambda: gx.wgan_interpolate(torch.ones(2, 3, dtype=torch.int32), r(2, 3)), E, "real"),
    ("wgan_interpolate/mixed-devices", lambda: gx.wgan_interpolate(img(), img(device=OTHER)), E, "fake"),
    ("wgan_interpolate/empty", lambda: gx.wgan_interpolate(r(0, 3), r(0, 3)), E, "real"),
    ("wgan_interpolate/alpha", lambda: gx.wgan_interpolate(r(2, 3), r(2, 3), alpha=r(3)), E, "alpha"),
    ("dragan_perturb/c<0", lambda: gx.dragan_perturb(img(), c=-0.5), E, "c "),
    ("dragan_perturb/int", lambda: gx.dragan_perturb(torch.ones(2, 3, dtype=torch.int32)), E, "x"),
    # ---- path length
    ("path_length_noise/shape", lambda: gx.path_length_noise((2, 3, 8), seed=1), E, "shape"),
    ("path_length_noise/seed<0", lambda: gx.path_length_noise((2, 3, 8, 8), seed=-1), E, "seed"),
    ("path_length_noise/seed-float", lambda: gx.path_length_noise((2, 3, 8, 8), seed=1.5), E, "seed"),
    ("path_length_noise_dot/rank", lambda: gx.path_length_noise_dot(r(2, 3, 8), seed=1), E, "images"),
    (
        "path_length_noise_dot/int",
        lambda: gx.path_length_noise_dot(torch.ones(2, 3, 4, 4, dtype=torch.int32), seed=1),
        E,
        "images",
    ),
    (
        "path_length_noise_dot/bool",
        lambda: gx.path_length_noise_dot(torch.ones(2, 3, 4, 4, dtype=torch.bool), seed=1),
        E,
        "images",
    ),
    ("path_length_noise_dot/empty", lambda: gx.path_length_noise_dot(img(0), seed=1), E, "images"),
    ("path_length_noise_dot/seed<0", lambda: gx.path_length_noise_dot(img(), seed=-3), E, "seed"),
    ("path_length_noise_dot/seed>=2**63", lambda: gx.path_length_noise_dot(img(), seed=2**63), E, "seed"),
    ("path_length_penalty/rank", lambda: gx.path_length_penalty(r(2, 3, 4, 5), 0.0), E, "pl_grads"),
    ("path_length_penalty/int", lambda: gx.path_length_penalty(torch.ones(2, 4, dtype=torch.int64), 0.0), E, "pl_grads"),
    ("path_length_penalty/empty", lambda: gx.path_length_penalty(r(0, 4, 8), 0.0), E, "pl_grads"),
    ("path_length_penalty/decay>1", lambda: gx.path_length_penalty(r(2, 4, 8), 0.0, decay=1.5), E, "decay"),
    ("path_length_penalty/decay<0", lambda: gx.path_length_penalty(r(2, 4, 8), 0.0, decay=-0.01), E, "decay"),
    ("path_length_penalty/pl_mean-shape", lambda: gx.path_length_penalty(r(2, 4, 8), torch.zeros(3)), E, "pl_mean"),
    ("path_length_penalty/pl_mean-str", lambda: gx.path_length_penalty(r(2, 4, 8), "0"), E, "pl_mean"),
    (
        "path_length_penalty/pl_mean-device",
        lambda: gx.path_length_penalty(r(2, 4, 8), torch.zeros((), device=_device(OTHER))),
        E,
        "pl_mean",
    ),
    ("PathLengthRegularizer/decay", lambda: gx.PathLengthRegularizer(decay=2.0), E, "decay"),
    ("PathLengthRegularizer/weight<0", lambda: gx.PathLengthRegularizer(weight=-2.0), E, "weight"),
    ("PathLengthRegularizer/batch", lambda: gx.PathLengthRegularizer()(img(2), r(3, 4, 8), seed=1), E, "ws"),
    ("PathLengthRegularizer/ws-rank", lambda: gx.PathLengthRegularizer()(img(2), r(2, 4, 8, 1), seed=1), E, "ws"),
    ("PathLengthRegularizer/images-rank", lambda: gx.PathLengthRegularizer()(r(2, 3, 8), r(2, 8), seed=1), E, "images"),
    ("PathLengthRegularizer/ws-device", lambda: gx.PathLengthRegularizer()(img(2), r(2, 8, device=OTHER), seed=1), E, "ws"),
    # ---- consistency
    ("consistency_loss/shape", lambda: gx.consistency_loss(r(2, 3), r(2, 4)), E, "out_aug"),
    ("consistency_loss/dtype", lambda: gx.consistency_loss(r(2, 3), r(2, 3, dtype=torch.float64)), E, "out_aug"),
    ("consistency_loss/int", lambda: gx.consistency_loss(torch.ones(2, 3, dtype=torch.int32), r(2, 3)), E, "out"),
    ("consistency_loss/empty", lambda: gx.consistency_loss(r(0, 3), r(0, 3)), E, "out"),
    ("consistency_loss/mixed-devices", lambda: gx.consistency_loss(r(2, 3), r(2, 3, device=OTHER)), E, "out_aug"),
    ("consistency_loss/weight<0", lambda: gx.consistency_loss(r(2, 3), r(2, 3), weight=-1.0), E, "weight"),
    ("bcr_loss/lambda_real<0", lambda: gx.bcr_loss(r(2), r(2), r(2), r(2), lambda_real=-1.0), E, "lambda_real"),
    ("bcr_loss/lambda_fake<0", lambda: gx.bcr_loss(r(2), r(2), r(2), r(2), lambda_fake=-1.0), E, "lambda_fake"),
    ("bcr_loss/fake_aug-shape", lambda: gx.bcr_loss(r(2), r(2), r(2), r(3)), E, "fake_aug"),
    ("bcr_loss/real-int", lambda: gx.bcr_loss(torch.ones(2, dtype=torch.int64), r(2), r(2), r(2)), E, "real"),
    ("perturb_latent/sigma<0", lambda: gx.perturb_latent(r(2, 8), sigma=-0.05), E, "sigma"),
    ("perturb_latent/int", lambda: gx.perturb_latent(torch.ones(2, 8, dtype=torch.int64)), E, "z"),
    ("perturb_latent/empty", lambda: gx.perturb_latent(r(0, 8)), E, "z"),
    ("zcr_discriminator_loss/weight<0", lambda: gx.zcr_discriminator_loss(r(2), r(2), weight=-20.0), E, "weight"),
    ("zcr_discriminator_loss/shape", lambda: gx.zcr_discriminator_loss(r(2), r(3)), E, "d_fake_eps"),
    ("zcr_generator_loss/weight<0", lambda: gx.zcr_generator_loss(img(), img(), weight=-0.5), E, "weight"),
    ("zcr_generator_loss/dtype", lambda: gx.zcr_generator_loss(img(), img(dtype=torch.float16)), E, "img_eps"),
    ("zcr_generator_loss/int", lambda: gx.zcr_generator_loss(torch.ones(2, 3, dtype=torch.int32), img()), E, "img"),
    # ---- augmentation
    ("diff_augment/policy-unknown", lambda: gx.diff_augment(img(), policy="color,rotate"), E, "policy"),
    ("diff_augment/policy-type", lambda: gx.diff_augment(img(), policy=["color"]), E, "policy"),
    ("diff_augment/policy-repeated", lambda: gx.diff_augment(img(), policy="color,color"), E, "policy"),
    ("diff_augment/rank", lambda: gx.diff_augment(r(2, 3, 8)), E, "x"),
    ("diff_augment/int", lambda: gx.diff_augment(torch.ones(2, 3, 8, 8, dtype=torch.uint8)), E, "x"),
    ("diff_augment/empty", lambda: gx.diff_augment(img(0)), E, "x"),
    ("diff_augment/params-batch", lambda: gx.diff_augment(img(2), params=dparams(3)), E, "params"),
    ("diff_augment/params-type", lambda: gx.diff_augment(img(2), params=[1, 2]), E, "params"),
    ("diff_augment/params-device", lambda: gx.diff_augment(img(2), params=dparams(2, device=OTHER)), E, "params"),
    ("cr_augment/rank", lambda: gx.cr_augment(r(2, 8, 8)), E, "x"),
    ("cr_augment/int", lambda: gx.cr_augment(torch.ones(2, 3, 8, 8, dtype=torch.int64)), E, "x"),
    ("cr_augment/empty", lambda: gx.cr_augment(img(0)), E, "x"),
    ("cr_augment/params-batch", lambda: gx.cr_augment(img(2), params=cparams(4)), E, "params"),
    ("cr_augment/params-device", lambda: gx.cr_augment(img(2), params=cparams(2, device=OTHER)), E, "params"),
    ("sample_diffaug_params/B=0", lambda: gx.sample_diffaug_params(0, 8, 8), E, "B"),
    ("sample_diffaug_params/policy", lambda: gx.sample_diffaug_params(2, 8, 8, policy="hue"), E, "policy"),
    ("sample_cr_params/H=0", lambda: gx.sample_cr_params(2, 0, 8), E, "H"),
    ("sample_cr_params/W-float", lambda: gx.sample_cr_params(2, 8, 8.0), E, "W"),
    # ---- instance noise, losses, LeCam, lazy regularization
    ("instance_noise/sigma<0", lambda: gx.instance_noise(img(), sigma=-0.1, seed=1), E, "sigma"),
    ("instance_noise/int", lambda: gx.instance_noise(torch.ones(2, 3, dtype=torch.int32), 0.1, seed=1), E, "x"),
    ("instance_noise/empty", lambda: gx.instance_noise(r(0, 3), 0.1, seed=1), E, "x"),
    ("instance_noise/seed<0", lambda: gx.instance_noise(img(), 0.1, seed=-1), E, "seed"),
    ("InstanceNoise/sigma0<0", lambda: gx.InstanceNoise(-1.0, 10), E, "sigma0"),
    ("InstanceNoise/anneal_steps", lambda: gx.InstanceNoise(1.0, 0), E, "anneal_steps"),
    ("LeCamRegularizer/decay>1", lambda: gx.LeCamRegularizer(decay=1.5), E, "decay"),
    ("LeCamRegularizer/weight<0", lambda: gx.LeCamRegularizer(weight=-0.3), E, "weight"),
    ("LeCamRegularizer/int", lambda: gx.LeCamRegularizer()(torch.ones(2, dtype=torch.int64), r(2)), E, "d_real"),
    ("LeCamRegularizer/empty", lambda: gx.LeCamRegularizer()(r(2), r(0)), E, "d_fake"),
    ("LeCamRegularizer/mixed-devices", lambda: gx.LeCamRegularizer()(r(2), r(2, device=OTHER)), E, "d_fake"),
    ("lsgan_d_loss/int", lambda: gx.lsgan_d_loss(torch.ones(2, dtype=torch.int32), r(2)), E, "real"),
    ("lsgan_g_loss/empty", lambda: gx.lsgan_g_loss(r(0)), E, "fake"),
    ("ns_d_loss/bool", lambda: gx.ns_d_loss(r(2), torch.ones(2, dtype=torch.bool)), E, "fake"),
    ("ns_g_loss/int", lambda: gx.ns_g_loss(torch.ones(2, dtype=torch.int64)), E, "fake"),
    ("hinge_d_loss/empty", lambda: gx.hinge_d_loss(r(0), r(2)), E, "real"),
    ("hinge_g_loss/not-tensor", lambda: gx.hinge_g_loss([1.0]), E, "fake"),
    ("wgan_d_loss/int", lambda: gx.wgan_d_loss(r(2), torch.ones(2, dtype=torch.int32)), E, "fake"),
    ("wgan_g_loss/empty", lambda: gx.wgan_g_loss(r(0, 1)), E, "fake"),
    ("lazy_regularization/interval", lambda: gx.lazy_regularization(0, 0.002), E, "interval"),
    ("lazy_regularization/lr<0", lambda: gx.lazy_regularization(4, -0.002), E, "lr"),
    ("lazy_regularization/betas", lambda: gx.lazy_regularization(4, 0.002, betas=(0.0, 0.9, 0.9)), E, "betas"),
    ("lazy_regularization/beta>1", lambda: gx.lazy_regularization(4, 0.002, betas=(0.0, 1.5)), E, "betas"),
    # ---- backend names
    ("use_backend/unknown", lambda: gx.use_backend("tpu").__enter__(), E, "tpu"),
    ("set_backend/unknown", lambda: gx.set_backend("fast"), E, "fast"),
    # ---- bias_act
    ("bias_act/x-not-a-tensor", lambda: gx.bias_act([1.0, 2.0]), TypeError, "x"),
    ("bias_act/x-int", lambda: gx.bias_act(torch.ones(2, 3, dtype=torch.int32)), TypeError, "x"),
    ("bias_act/act-unknown", lambda: gx.bias_act(r(2, 3), act="gelu"), ValueError, "act"),
    ("bias_act/act-None", lambda: gx.bias_act(r(2, 3), act=None), ValueError, "act"),
    ("bias_act/dim-out-of-range", lambda: gx.bias_act(r(2, 3), r(3), dim=2), ValueError, "dim"),
    ("bias_act/dim-float", lambda: gx.bias_act(r(2, 3), r(3), dim=1.0), TypeError, "dim"),
    ("bias_act/b-wrong-size", lambda: gx.bias_act(r(2, 3), r(4)), ValueError, "b"),
    ("bias_act/b-2d", lambda: gx.bias_act(r(2, 3), r(1, 3)), ValueError, "b"),
    ("bias_act/b-not-a-tensor", lambda: gx.bias_act(r(2, 3), [0.0, 0.0, 0.0]), TypeError, "b"),
    ("bias_act/b-dtype", lambda: gx.bias_act(r(2, 3), r(3, dtype=torch.float64)), TypeError, "b"),
    ("bias_act/b-device", lambda: gx.bias_act(r(2, 3), r(3, device=OTHER)), ValueError, "b"),
    ("bias_act/b-with-0d-x", lambda: gx.bias_act(r(), r(1)), ValueError, "b"),
    ("bias_act/clamp<0", lambda: gx.bias_act(r(2, 3), clamp=-1.0), ValueError, "clamp"),
    ("bias_act/clamp-nan", lambda: gx.bias_act(r(2, 3), clamp=float("nan")), ValueError, "clamp"),
    ("bias_act/clamp-str", lambda: gx.bias_act(r(2, 3), clamp="1"), TypeError, "clamp"),
    ("bias_act/alpha-str", lambda: gx.bias_act(r(2, 3), act="lrelu", alpha="0.2"), TypeError, "alpha"),
    ("bias_act/gain-inf", lambda: gx.bias_act(r(2, 3), gain=float("inf")), ValueError, "gain"),
    ("bias_act/gain-bool", lambda: gx.bias_act(r(2, 3), gain=True), TypeError, "gain"),
    ("bias_act/backend-unknown", lambda: gx.bias_act(r(2, 3), backend="fast"), ValueError, "backend"),
    ("bias_act/nvlabs-impl", lambda: nv_bias_act.bias_act(r(2, 3), impl="triton"), ValueError, "impl"),
    # ---- upfirdn2d family
    ("upfirdn2d/x-3d", lambda: gx.upfirdn2d(r(3, 4, 4), None), ValueError, "x"),
    ("upfirdn2d/x-int", lambda: gx.upfirdn2d(torch.ones(1, 1, 4, 4, dtype=torch.int64), None), TypeError, "x"),
    ("upfirdn2d/x-not-a-tensor", lambda: gx.upfirdn2d([[[[1.0]]]], None), TypeError, "x"),
    ("upfirdn2d/f-3d", lambda: gx.upfirdn2d(r(1, 1, 4, 4), r(2, 2, 2)), ValueError, "f"),
    ("upfirdn2d/f-empty", lambda: gx.upfirdn2d(r(1, 1, 4, 4), r(0)), ValueError, "f"),
    ("upfirdn2d/f-list", lambda: gx.upfirdn2d(r(1, 1, 4, 4), [1.0, 2.0]), TypeError, "f"),
    ("upfirdn2d/f-int", lambda: gx.upfirdn2d(r(1, 1, 4, 4), torch.ones(2, dtype=torch.int32)), TypeError, "f"),
    ("upfirdn2d/f-requires-grad", lambda: gx.upfirdn2d(r(1, 1, 4, 4), r(2).requires_grad_()), ValueError, "f"),
    ("upfirdn2d/f-device", lambda: gx.upfirdn2d(r(1, 1, 4, 4), r(2, device=OTHER)), ValueError, "f"),
    ("upfirdn2d/up-0", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, up=0), ValueError, "up"),
    ("upfirdn2d/up-float", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, up=1.5), TypeError, "up"),
    ("upfirdn2d/up-bool", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, up=True), TypeError, "up"),
    ("upfirdn2d/up-3", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, up=[1, 2, 3]), ValueError, "up"),
    ("upfirdn2d/down-neg", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, down=[2, -1]), ValueError, "down"),
    ("upfirdn2d/padding-3", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, padding=[1, 2, 3]), ValueError, "padding"),
    ("upfirdn2d/padding-float", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, padding=0.5), TypeError, "padding"),
    ("upfirdn2d/padding-no-output", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, padding=[-2, -2, 0, 0]), ValueError, "padding"),
    ("upfirdn2d/filter-too-big", lambda: gx.upfirdn2d(r(1, 1, 4, 4), r(5, 5)), ValueError, "padding"),
    ("upfirdn2d/flip-int", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, flip_filter=1), TypeError, "flip_filter"),
    ("upfirdn2d/gain-str", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, gain="2"), TypeError, "gain"),
    ("upfirdn2d/upsample-up-0", lambda: gx.upsample2d(r(1, 1, 4, 4), None, up=0), ValueError, "up"),
    ("upfirdn2d/downsample-crop-all", lambda: gx.downsample2d(r(1, 1, 4, 4), None, padding=-3), ValueError, "padding"),
    ("upfirdn2d/filter2d-f-4d", lambda: gx.filter2d(r(1, 1, 4, 4), r(1, 1, 2, 2)), ValueError, "f"),
    ("upfirdn2d/setup-3d", lambda: gx.setup_filter(torch.ones(2, 2, 2)), ValueError, "f"),
    ("upfirdn2d/setup-empty", lambda: gx.setup_filter([]), ValueError, "f"),
    ("upfirdn2d/setup-separable-2d", lambda: gx.setup_filter([[1, 2], [3, 4]], separable=True), ValueError, "separable"),
    ("upfirdn2d/setup-sum-0", lambda: gx.setup_filter([1, -1]), ValueError, "normalize"),
    ("upfirdn2d/setup-str", lambda: gx.setup_filter("abc"), TypeError, "f"),
    ("upfirdn2d/fl-x-3d", lambda: gx.filtered_lrelu(r(3, 4, 4)), ValueError, "x"),
    ("upfirdn2d/fl-fu-3d", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), fu=r(2, 2, 2)), ValueError, "fu"),
    ("upfirdn2d/fl-fd-grad", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), fd=r(2).requires_grad_()), ValueError, "fd"),
    ("upfirdn2d/fl-b-size", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), b=r(3)), ValueError, "b"),
    ("upfirdn2d/fl-b-dtype", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), b=r(2, dtype=torch.float64)), TypeError, "b"),
    ("upfirdn2d/fl-gain-0", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), gain=0.0), ValueError, "gain"),
    ("upfirdn2d/fl-slope<0", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), slope=-0.1), ValueError, "slope"),
    ("upfirdn2d/fl-clamp<0", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), clamp=-1), ValueError, "clamp"),
    ("upfirdn2d/fl-up-0", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), up=0), ValueError, "up"),
    ("upfirdn2d/fl-fd-too-big", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), fd=r(6)), ValueError, "padding"),
    ("upfirdn2d/fl-flip-str", lambda: gx.filtered_lrelu(r(1, 2, 4, 4), flip_filter="no"), TypeError, "flip_filter"),
    ("upfirdn2d/backend-unknown", lambda: gx.upfirdn2d(r(1, 1, 4, 4), None, backend="fast"), ValueError, "backend"),
    ("upfirdn2d/nvlabs-impl", lambda: nv_upfirdn2d.upfirdn2d(r(1, 1, 4, 4), None, impl="triton"), ValueError, "impl"),
    # ---- ADA
    ("ada/p>1", lambda: gx.sample_ada_params(2, 8, 8, 1.5), ValueError, "p must be in [0, 1]"),
    ("ada/p<0", lambda: gx.sample_ada_params(2, 8, 8, -0.1), ValueError, "p must be in [0, 1]"),
    ("ada/p-tensor>1", lambda: gx.sample_ada_params(2, 8, 8, torch.tensor(2.0)), ValueError, "p must be in [0, 1]"),
    ("ada/preset-unknown", lambda: gx.sample_ada_params(2, 8, 8, 0.5, preset="xyz"), ValueError, "preset"),
    (
        "ada/unknown-transform",
        lambda: gx.sample_ada_params(2, 8, 8, 0.5, multipliers={"flip": 1}),
        ValueError,
        "unknown transform",
    ),
    ("ada/module-preset", lambda: gx.AdaptiveAugment(preset="bgcx"), ValueError, "preset"),
    ("ada/module-p>1", lambda: gx.AdaptiveAugment(p=1.2), ValueError, "p must be in [0, 1]"),
    (
        "ada/geom-batch",
        lambda: gx.ada_augment(img(), {**ada_params(), "geom": ada_params()["geom"][:1]}),
        ValueError,
        "params['geom']",
    ),
    (
        "ada/color-cols",
        lambda: gx.ada_augment(img(), {**ada_params(), "color": ada_params()["color"][:, :3]}),
        ValueError,
        "params['color']",
    ),
    ("ada/channels-2", lambda: gx.ada_augment(img()[:, :2], ada_params()), ValueError, "1 or 3 channels"),
    ("ada/size-mismatch", lambda: gx.ada_augment(img()[..., :7], ada_params()), ValueError, "drawn for"),
    (
        "ada/geom-float64",
        lambda: gx.ada_augment(img(), {**ada_params(), "geom": ada_params()["geom"].double()}),
        ValueError,
        "float32",
    ),
    ("ada/x-3d", lambda: gx.ada_augment(img()[0], ada_params()), ValueError, "dim"),
    ("ada/params-str", lambda: gx.ada_augment(img(), "params"), TypeError, "dict"),
]

# backend names go through dispatch itself, so these run without the tripwire
BACKEND_CASES = [
    ("r1_penalty/backend-unknown", lambda: gx.r1_penalty(r(2, 3), backend="gpu"), ValueError, "backend"),
    ("grad_sqnorm/backend-unknown", lambda: gx.grad_sqnorm(r(2, 3), backend="Triton"), ValueError, "backend"),
    ("path_length_noise_dot/backend-unknown", lambda: gx.path_length_noise_dot(img(), 1, backend="x"), ValueError, "backend"),
    ("instance_noise/backend-unknown", lambda: gx.instance_noise(img(), 0.1, 1, backend="x"), ValueError, "backend"),
    ("consistency_loss/backend-unknown", lambda: gx.consistency_loss(r(2), r(2), backend="x"), ValueError, "backend"),
    ("diff_augment/backend-unknown", lambda: gx.diff_augment(img(), backend="x"), ValueError, "backend"),
    ("cr_augment/backend-unknown", lambda: gx.cr_augment(img(), backend="x"), ValueError, "backend"),
    (
        "PathLengthRegularizer/backend-unknown",
        lambda: gx.PathLengthRegularizer(backend="x")(img(), r(2, 8), 1),
        ValueError,
        "backend",
    ),
]
if "cuda" not in gx.available_backends():
    BACKEND_CASES.append(
        ("r1_penalty/backend-cuda-unavailable", lambda: gx.r1_penalty(r(2, 3), backend="cuda"), gx.BackendUnavailable, "cuda")
    )
if "cpu" not in gx.available_backends():
    BACKEND_CASES.append(
        ("r1_penalty/backend-cpu-unavailable", lambda: gx.r1_penalty(r(2, 3), backend="cpu"), gx.BackendUnavailable, "cpu")
    )


def _expect(call, exc, needle):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    assert needle in msg, f"message does not name {needle!r}: {msg!r}"
    return msg


@every_backend
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_before_any_kernel(case, backend, device):
    _, call, exc, needle = case
    raises_before_any_kernel(call, backend, device, exc, needle)


@pytest.mark.parametrize("case", BACKEND_CASES, ids=[c[0] for c in BACKEND_CASES])
def test_bad_backend_name(case):
    _, call, exc, needle = case
    msg = _expect(call, exc, needle)
    if exc is gx.BackendUnavailable:
        assert "build" in msg or "available" in msg or "device" in msg, msg


def test_env_backend_unknown(monkeypatch):
    monkeypatch.setenv("GANREG_BACKEND", "bogus")
    _expect(lambda: gx.r1_penalty(r(2, 3)), ValueError, "GANREG_BACKEND")


# ---------------------------------------------------------------- NaN / Inf propagation


def _poisoned(bad, shape=(3, 2, 4, 4), sample=1):
    """A random tensor whose sample ``sample`` holds one ``bad`` value."""
    x = torch.randn(shape)
    x.view(shape[0], -1)[sample, 5] = bad
    return x


def _ident_dparams(B):
    return {"brightness": torch.rand(B), "saturation": torch.rand(B), "contrast": torch.rand(B)}


# (id, ops, fn(x_with_bad_value, backend) -> output, which part of the output must be non-finite)
PROPAGATION = [
    ("grad_sqnorm", GN, lambda x, b: gx.grad_sqnorm(x, backend=b), lambda out: out[1]),
    ("grad_sqnorm/list", GN, lambda x, b: gx.grad_sqnorm([torch.randn(3, 5), x], backend=b), lambda out: out[1]),
    ("grad_sqnorm/total", GN, lambda x, b: gx.grad_sqnorm(x, per_sample=False, backend=b), lambda out: out),
    ("grad_sqnorm/inv_scale", GN, lambda x, b: gx.grad_sqnorm(x, inv_scale=1 / 65536, backend=b), lambda out: out[1]),
    ("r1_penalty", GN, lambda x, b: gx.r1_penalty(x, backend=b), lambda out: out),
    ("r1_penalty/none", GN, lambda x, b: gx.r1_penalty(x, reduction="none", backend=b), lambda out: out[1]),
    ("r2_penalty", GN, lambda x, b: gx.r2_penalty(x, reduction="sum", backend=b), lambda out: out),
    ("gradient_penalty", GN, lambda x, b: gx.gradient_penalty(x, backend=b), lambda out: out),
    ("gradient_penalty/none", GN, lambda x, b: gx.gradient_penalty(x, reduction="none", backend=b), lambda out: out[1]),
    (
        "gradient_penalty/one_sided",
        GN,
        lambda x, b: gx.gradient_penalty(x, one_sided=True, reduction="none", backend=b),
        lambda out: out[1],
    ),
    (
        "roth_penalty",
        GN,
        lambda x, b: gx.roth_penalty(x, torch.randn(3), torch.randn(3, 2, 4, 4), torch.randn(3), backend=b),
        lambda out: out,
    ),
    ("path_length_noise_dot", NOISE, lambda x, b: gx.path_length_noise_dot(x, seed=7, backend=b), lambda out: out),
    ("path_length_penalty", GN, lambda x, b: gx.path_length_penalty(x.view(3, 4, 8), 0.5, backend=b)[1], lambda out: out),
    ("path_length_penalty/penalty", GN, lambda x, b: gx.path_length_penalty(x.view(3, 4, 8), 0.5, backend=b)[0], lambda out: out),
    ("instance_noise", NOISE, lambda x, b: gx.instance_noise(x, 0.3, seed=7, backend=b), lambda out: out.reshape(3, -1)[1, 5]),
    ("consistency_loss", CONS, lambda x, b: gx.consistency_loss(x, torch.randn(3, 2, 4, 4), backend=b), lambda out: out),
    ("consistency_loss/aug", CONS, lambda x, b: gx.consistency_loss(torch.randn(3, 2, 4, 4), x, backend=b), lambda out: out),
    (
        "bcr_loss",
        CONS,
        lambda x, b: gx.bcr_loss(torch.randn(3), torch.randn(3), x, torch.randn(3, 2, 4, 4), backend=b),
        lambda out: out,
    ),
    (
        "zcr_discriminator_loss",
        CONS,
        lambda x, b: gx.zcr_discriminator_loss(x, torch.zeros(3, 2, 4, 4), backend=b),
        lambda out: out,
    ),
    ("zcr_generator_loss", CONS, lambda x, b: gx.zcr_generator_loss(x, torch.zeros(3, 2, 4, 4), backend=b), lambda out: out),
    # colour only: the saturation/contrast means spread the bad value over the whole sample
    ("diff_augment/color", DA, lambda x, b: gx.diff_augment(x, "color", params=_ident_dparams(3), backend=b), lambda out: out[1]),
    (
        "diff_augment/translation",
        DA,
        lambda x, b: gx.diff_augment(x, "translation", params={"translation": torch.zeros(3, 2, dtype=torch.long)}, backend=b),
        lambda out: out.reshape(3, -1)[1, 5],
    ),
    (
        "cr_augment",
        CR,
        lambda x, b: gx.cr_augment(
            x, params={"flip": torch.zeros(3, dtype=torch.bool), "translation": torch.zeros(3, 2, dtype=torch.long)}, backend=b
        ),
        lambda out: out.reshape(3, -1)[1, 5],
    ),
]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@every_backend
@pytest.mark.parametrize("case", PROPAGATION, ids=[c[0] for c in PROPAGATION])
def test_nonfinite_propagates(case, backend, device, bad):
    name, ops, fn, pick = case
    need(backend, *ops)
    with torch.device(device):
        x = _poisoned(bad)
        out = pick(fn(x, backend))
    assert not torch.isfinite(out).all(), f"{name}[{backend}]: a {bad} input gave a finite output {out}"
    if math.isnan(bad) or name.startswith(("instance_noise", "diff_augment/translation", "cr_augment")):
        # a NaN stays NaN; elementwise ops keep an infinity as that infinity
        with torch.device(device):
            ref = pick(fn(x, "reference"))
        torch.testing.assert_close(out.to(ref.dtype), ref, equal_nan=True, rtol=1e-5, atol=1e-5)


@every_backend
def test_lecam_nan_propagates(backend, device):
    reg = gx.LeCamRegularizer().to(device)
    d_real = torch.randn(4, device=device)
    d_real[2] = float("nan")
    assert torch.isnan(reg(d_real, torch.randn(4, device=device)))
    assert torch.isnan(reg.ema_real)


@every_backend
def test_nan_propagates_through_backward(backend, device):
    """A NaN gradient entry must reach the penalty's gradient too (double-backward users see it)."""
    need(backend, *GN)
    g = _poisoned(float("nan")).to(device).requires_grad_()
    gx.r1_penalty(g, backend=backend).backward()
    assert torch.isnan(g.grad.reshape(3, -1)[1, 5])


# ---------------------------------------------------------------- nothing modified in place


def _snap(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _snap(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snap(v) for v in obj)
    return obj


def _same(a, b):
    if isinstance(a, torch.Tensor):
        return (a.dtype, a.shape) == (b.dtype, b.shape) and torch.equal(a.detach(), b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return True


def _strided(*shape):
    return torch.randn(*shape[:-1], 2 * shape[-1])[..., ::2]


def _inputs():
    return {
        "g": _strided(3, 2, 4, 4).requires_grad_(),
        "g_list": [torch.randn(3, 5), torch.randn(3, 2, 4, 4).contiguous(memory_format=torch.channels_last)],
        "logits": torch.randn(3),
        "img": torch.randn(3, 2, 8, 8).contiguous(memory_format=torch.channels_last),
        "img2": _strided(3, 2, 8, 8),
        "plg": torch.randn(3, 4, 8),
        "pl_mean": torch.tensor(0.7),
        "dparams": gx.sample_diffaug_params(3, 8, 8),
        "cparams": gx.sample_cr_params(3, 8, 8),
        "d": torch.randn(3, 1),
        "d2": torch.randn(3, 1),
        "ws": torch.randn(3, 8),
    }


INPLACE = [
    ("grad_sqnorm", GN, lambda i, b: gx.grad_sqnorm(i["g_list"], inv_scale=0.5, backend=b)),
    ("r1_penalty", GN, lambda i, b: gx.r1_penalty(i["g"], backend=b)),
    ("r2_penalty", GN, lambda i, b: gx.r2_penalty(i["g_list"], backend=b)),
    ("gradient_penalty", GN, lambda i, b: gx.gradient_penalty(i["g"], one_sided=True, backend=b)),
    ("roth_penalty", GN, lambda i, b: gx.roth_penalty(i["g"], i["logits"], i["g_list"], i["logits"], backend=b)),
    ("wgan_interpolate", (), lambda i, b: gx.wgan_interpolate(i["img"], i["img2"])),
    ("dragan_perturb", (), lambda i, b: gx.dragan_perturb(i["img2"])),
    ("path_length_noise_dot", NOISE, lambda i, b: gx.path_length_noise_dot(i["img2"], seed=3, backend=b)),
    ("path_length_penalty", GN, lambda i, b: gx.path_length_penalty(i["plg"], i["pl_mean"], backend=b)),
    ("path_length_penalty/2d", GN, lambda i, b: gx.path_length_penalty(i["ws"], i["pl_mean"], decay=0.5, backend=b)),
    ("instance_noise", NOISE, lambda i, b: gx.instance_noise(i["img"], 0.2, seed=3, backend=b)),
    ("consistency_loss", CONS, lambda i, b: gx.consistency_loss(i["img"], i["img2"], backend=b)),
    ("bcr_loss", CONS, lambda i, b: gx.bcr_loss(i["d"], i["d2"], i["d2"], i["d"], backend=b)),
    ("zcr_generator_loss", CONS, lambda i, b: gx.zcr_generator_loss(i["img"], i["img2"], backend=b)),
    ("perturb_latent", (), lambda i, b: gx.perturb_latent(i["ws"])),
    ("diff_augment", DA, lambda i, b: gx.diff_augment(i["img"], params=i["dparams"], backend=b)),
    ("diff_augment/strided", DA, lambda i, b: gx.diff_augment(i["img2"], params=i["dparams"], backend=b)),
    ("cr_augment", CR, lambda i, b: gx.cr_augment(i["img2"], params=i["cparams"], backend=b)),
    ("losses", (), lambda i, b: [f(i["d"], i["d2"]) for f in (gx.lsgan_d_loss, gx.ns_d_loss, gx.hinge_d_loss, gx.wgan_d_loss)]),
    ("LeCamRegularizer", (), lambda i, b: gx.LeCamRegularizer()(i["d"], i["d2"])),
]


@every_backend
@pytest.mark.parametrize("case", INPLACE, ids=[c[0] for c in INPLACE])
def test_inputs_not_modified(case, backend, device):
    name, ops, fn = case
    need(backend, *ops)
    with torch.device(device):
        inputs = _inputs()
        before = _snap(inputs)
        out = fn(inputs, backend)
    outs = out if isinstance(out, (list, tuple)) else [out]
    # backward too: the autograd kernels must not write into saved inputs either
    diff = [o for o in outs if isinstance(o, torch.Tensor) and o.requires_grad]
    if diff:
        sum(o.float().sum() for o in diff).backward()
    for k in inputs:
        assert _same(inputs[k], before[k]), f"{name}[{backend}] modified input {k!r} in place"
    if isinstance(out, tuple) and name.startswith("path_length_penalty"):
        assert out[1] is not inputs["pl_mean"]


@every_backend
def test_path_length_regularizer_leaves_inputs(backend, device):
    need(backend, *NOISE, *GN)
    ws = torch.randn(2, 3, 8, device=device, requires_grad=True)
    w = torch.randn(24, 2 * 4 * 4, device=device)
    images = torch.tanh(ws.reshape(2, -1) @ w).view(2, 2, 4, 4)
    ws_before, img_before = ws.detach().clone(), images.detach().clone()
    reg = gx.PathLengthRegularizer(backend=backend).to(device)
    reg(images, ws, seed=5).backward()
    assert torch.equal(ws.detach(), ws_before) and torch.equal(images.detach(), img_before)
    assert reg.pl_mean.item() != 0.0
