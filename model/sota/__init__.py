"""The sota variant: torchvision's LR-ASPP on a MobileNetV3-Large backbone, trained from scratch."""
from model.sota.sota_model import SotaModel

__all__ = ['SotaModel']
