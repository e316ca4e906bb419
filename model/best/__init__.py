"""The best variant: a residual U-Net with a multi-dilation context block at its coarsest level."""
from model.best.best_model import BestModel

__all__ = ['BestModel']
