"""The base variant: a small plain U-Net."""
from model.base.base_model import BaseModel

__all__ = ['BaseModel']
