"""CityscapesDataset (--data_type cityscapes): --data_root holds leftImg8bit/<split>/<city>/
*_leftImg8bit.png and gtFine/<split>/<city>/*_gtFine_labelIds.png (splits train and val unless
--train_split / --val_split say otherwise). The 34 label ids are read as the 19 train ids."""
import glob
import os

import numpy as np

from data.folder import data_root, no_samples, split, split_folder
from data.seg_dataset import SegDataset
from utils.errors import ConfigError

IMAGE_END, LABEL_END = '_leftImg8bit.png', '_gtFine_labelIds.png'
# name, label id, colour of each train id, as cityscapesScripts' labels.py has them
CLASSES = (
    ('road', 7, (128, 64, 128)), ('sidewalk', 8, (244, 35, 232)),
    ('building', 11, (70, 70, 70)), ('wall', 12, (102, 102, 156)),
    ('fence', 13, (190, 153, 153)), ('pole', 17, (153, 153, 153)),
    ('traffic light', 19, (250, 170, 30)), ('traffic sign', 20, (220, 220, 0)),
    ('vegetation', 21, (107, 142, 35)), ('terrain', 22, (152, 251, 152)),
    ('sky', 23, (70, 130, 180)), ('person', 24, (220, 20, 60)),
    ('rider', 25, (255, 0, 0)), ('car', 26, (0, 0, 142)),
    ('truck', 27, (0, 0, 70)), ('bus', 28, (0, 60, 100)),
    ('train', 31, (0, 80, 100)), ('motorcycle', 32, (0, 0, 230)),
    ('bicycle', 33, (119, 11, 32)),
)


def train_ids():
    """The 256-entry label map: label id -> train id, 255 (ignored) for the ids not trained on
    (unlabeled, ego vehicle, ground, parking, ...)."""
    table = np.full(256, 255, np.uint8)
    for train_id, (_, label_id, _) in enumerate(CLASSES):
        table[label_id] = train_id
    return table


def label_of(img, img_dir, label_dir):
    """The label of img_dir/<city>/<frame>_leftImg8bit.png: label_dir/<city>/<frame>_gtFine_..."""
    return os.path.join(label_dir, os.path.relpath(img, img_dir)[:-len(IMAGE_END)] + LABEL_END)


class CityscapesDataset(SegDataset):
    defaults = {'class_names': [name for name, _, _ in CLASSES], 'ignore_index': 255}
    vflip = False  # photos have an up
    palette = np.array([colour for _, _, colour in CLASSES], np.uint8)
    label_map = train_ids()

    @staticmethod
    def find(args, is_train):
        root = data_root(args, ('leftImg8bit', 'gtFine'), 'DIR')
        img_dir, flag, name = split_folder(os.path.join(root, 'leftImg8bit'), args, is_train,
                                           ('train', 'val'))
        images = sorted(glob.glob(os.path.join(glob.escape(img_dir), '*', '*' + IMAGE_END)))
        if not images:
            raise no_samples(flag, name, f'{img_dir} holds no <city>/*{IMAGE_END} images')
        label_dir = os.path.join(root, 'gtFine', name)
        samples = [(img, label_of(img, img_dir, label_dir), os.path.relpath(img, root))
                   for img in images]
        missing = [label for _, label, _ in samples if not os.path.isfile(label)]
        if missing:  # gtFine not unpacked, or only in part
            raise ConfigError(f'{flag} {name}: {len(missing)} of {len(images)} images in '
                              f'{img_dir} have no label, e.g. {missing[0]}; unpack gtFine into '
                              '--data_root beside leftImg8bit')
        return samples

    @staticmethod
    def split_name(args):
        """cityscapes_<split>, e.g. cityscapes_val."""
        return f'cityscapes_{split(args, False, ("train", "val"))[1]}'
