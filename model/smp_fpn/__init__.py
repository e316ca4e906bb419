"""The smp_fpn variant: segmentation_models_pytorch's FPN on a ResNet-18 encoder, trained from
scratch; an example of a model with a rule for its input size (input_multiple)."""
from model.smp_fpn.smp_fpn_model import SmpFpnModel

__all__ = ['SmpFpnModel']
