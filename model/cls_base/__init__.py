"""The cls_base variant: a small CNN image classifier."""
from model.cls_base.cls_base_model import ClsBaseModel

__all__ = ['ClsBaseModel']
