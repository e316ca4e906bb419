"""SmpFpnModel: segmentation_models_pytorch's FPN with a ResNet-18 encoder, randomly initialised.
encoder_weights=None matters: smp would otherwise download ImageNet weights. To start from them,
pass torchvision's resnet18 file (see the README's "Pretrained weights") with --weights_backbone.
The package is not in requirements.txt (pip install segmentation-models-pytorch); only this model
needs it."""
import torch.nn as nn

from utils.errors import ConfigError


class SmpFpnModel(nn.Module):
    task = 'seg'  # a class score per pixel (task/task_entry.py)
    # The encoder halves the height and width five times and the decoder adds the maps back up,
    # so both must be multiples of 2**5: the task pads every image up to that (input_size.py).
    input_multiple = 32
    # --weights_backbone: smp's ResNet-18 encoder is torchvision's resnet18 without its fc, so
    # torchvision's resnet18 file loads into it as it is (its fc is left out)
    backbone_weights = {'load_into': 'net.encoder', 'load_prefix': []}

    def __init__(self, args):
        super().__init__()
        try:  # imported here: only this model needs it, and it takes about 2 s (timm)
            import segmentation_models_pytorch as smp
        except ModuleNotFoundError as e:
            raise ConfigError(f'--model_type smp_fpn needs segmentation_models_pytorch ({e}): '
                              'pip install segmentation-models-pytorch, or add '
                              'segmentation-models-pytorch to requirements.txt') from e
        self.net = smp.FPN(encoder_name='resnet18', encoder_weights=None,
                           classes=args.num_classes)

    def forward(self, x):  # (B, 3, H, W), H and W multiples of 32 -> (B, num_classes, H, W)
        return self.net(x)
