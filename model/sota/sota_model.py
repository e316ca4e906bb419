"""SotaModel: torchvision's LR-ASPP MobileNetV3-Large segmentation model, randomly initialised.
weights=None and weights_backbone=None matter: torchvision would otherwise download ImageNet
weights. To start from them, download torchvision's mobilenet_v3_large weights once (see the
README's "Pretrained weights") and pass the file with --weights_backbone."""
import torch.nn as nn


class SotaModel(nn.Module):
    task = 'seg'  # a class score per pixel (task/task_entry.py)
    # --weights_backbone: torchvision's mobilenet_v3_large file holds the backbone as
    # `features.*` (and an ImageNet classifier, left out); here it is `net.backbone.*`
    backbone_weights = {'load_into': 'net.backbone', 'load_prefix': ['features.=']}

    def __init__(self, args):
        super().__init__()
        # Imported here: torchvision takes about 2 s to import, which every other model would
        # pay at start.
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large
        self.net = lraspp_mobilenet_v3_large(
            weights=None,
            weights_backbone=None,
            num_classes=args.num_classes,
        )

    def forward(self, x):  # (B, 3, H, W) -> (B, num_classes, H, W) logits
        # torchvision returns a dict; the rest of the template wants the tensor
        return self.net(x)['out']
