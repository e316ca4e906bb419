"""VOCDataset (--data_type voc): PASCAL VOC 2012 as it ships; --data_root is its VOC2012 folder
(VOCdevkit/VOC2012). A split is ImageSets/Segmentation/<split>.txt, one image id a line
(train and val unless --train_split / --val_split say e.g. trainval); 255 marks boundaries."""
import os

import numpy as np

from data.folder import data_root, no_samples, split
from data.seg_dataset import SegDataset
from utils.errors import ConfigError

CLASS_NAMES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
    'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
    'train', 'tvmonitor',
)
SPLITS = os.path.join('ImageSets', 'Segmentation')


def colormap(n):
    """(n, 3) uint8: VOC's colour of each index (VOCdevkit's labelcolormap). The bits of i, three
    at a time from the lowest, fill red, green and blue from their highest bit down."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        bits = i
        for shift in range(7, -1, -1):
            for channel in range(3):
                cmap[i, channel] |= (bits >> channel & 1) << shift
            bits >>= 3
    return cmap


class VOCDataset(SegDataset):
    defaults = {'class_names': list(CLASS_NAMES), 'ignore_index': 255}
    vflip = False  # photos have an up
    # the PNG labels' own palette: the 21 classes' colours, and 255's (boundary) (224, 224, 192)
    palette = colormap(256)

    @staticmethod
    def find(args, is_train):
        root = data_root(args, ('JPEGImages', 'SegmentationClass', SPLITS), 'VOCdevkit/VOC2012')
        flag, name = split(args, is_train, ('train', 'val'))
        path = os.path.join(root, SPLITS, f'{name}.txt')
        if not os.path.isfile(path):
            have = sorted(f[:-4] for f in os.listdir(os.path.join(root, SPLITS))
                          if f.endswith('.txt'))
            raise ConfigError(f'{flag} {name}: there is no split file {path}; pass {flag} one '
                              f'of: {", ".join(have) or "(none there)"}')
        with open(path) as f:
            ids = [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
        if not ids:
            raise no_samples(flag, name, f'{path} lists no image ids')
        return [(os.path.join(root, 'JPEGImages', f'{i}.jpg'),
                 os.path.join(root, 'SegmentationClass', f'{i}.png'), f'{path}:{n}')
                for n, i in ids]

    @staticmethod
    def split_name(args):
        """voc_<split>, e.g. voc_val."""
        return f'voc_{split(args, False, ("train", "val"))[1]}'
