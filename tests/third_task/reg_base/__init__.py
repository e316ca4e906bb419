"""The reg_base variant: a tiny CNN that gives one number per image."""
from model.reg_base.reg_base_model import RegBaseModel

__all__ = ['RegBaseModel']
