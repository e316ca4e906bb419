"""The better variant: a wider U-Net of residual blocks."""
from model.better.better_model import BetterModel

__all__ = ['BetterModel']
