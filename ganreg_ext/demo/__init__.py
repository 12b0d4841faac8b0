"""``python -m ganreg_ext.demo`` (``make demo``): a small StyleGAN2-flavoured GAN on scikit-learn's
digits, trained with the package's lazy R1, lazy path length regularization, DiffAugment and
bCR, with a digits score, sample grids, curves, a checkpoint and a timing table.
See ``python -m ganreg_ext.demo --help``."""

from .cli import main, parse_args
from .config import Config
from .run import run
from .trainer import Trainer

__all__ = ["Config", "Trainer", "main", "parse_args", "run"]
