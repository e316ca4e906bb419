"""ADE20KDataset (--data_type ade20k): the SceneParsing benchmark's ADEChallengeData2016 folder as
--data_root: images/<split>/*.jpg with annotations/<split>/*.png (splits training and
validation unless --train_split / --val_split say otherwise). 150 classes; the value 0
("other") is ignored."""
import glob
import os

import numpy as np

from data.folder import data_root, no_samples, split, split_folder
from data.seg_dataset import SegDataset
from data.voc import colormap

SPLITS = ('training', 'validation')
# The benchmark's objectInfo150 names (the first of each synonym list), stored values 1..150.
CLASS_NAMES = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass',
    'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain',
    'chair', 'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug',
    'field', 'armchair', 'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub',
    'railing', 'cushion', 'base', 'box', 'column', 'signboard', 'chest of drawers', 'counter',
    'sand', 'sink', 'skyscraper', 'fireplace', 'refrigerator', 'grandstand', 'path', 'stairs',
    'runway', 'case', 'pool table', 'pillow', 'screen door', 'stairway', 'river', 'bridge',
    'bookcase', 'blind', 'coffee table', 'toilet', 'flower', 'book', 'hill', 'bench',
    'countertop', 'stove', 'palm', 'kitchen island', 'computer', 'swivel chair', 'boat', 'bar',
    'arcade machine', 'hovel', 'bus', 'towel', 'light', 'truck', 'tower', 'chandelier',
    'awning', 'streetlight', 'booth', 'television receiver', 'airplane', 'dirt track',
    'apparel', 'pole', 'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet',
    'poster', 'stage', 'van', 'ship', 'fountain', 'conveyer belt', 'canopy', 'washer',
    'plaything', 'swimming pool', 'stool', 'barrel', 'basket', 'waterfall', 'tent', 'bag',
    'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank', 'trade name', 'microwave',
    'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket', 'sculpture', 'hood',
    'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen', 'plate',
    'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag',
)


def shift_down():
    """The 256-entry label map: 0 -> 255 (ignored), 1..150 -> 0..149. A value above 150 stays
    above the classes, so that SegDataset reports it rather than ignoring it."""
    table = np.arange(256, dtype=np.uint8)
    table[0] = 255
    table[1:len(CLASS_NAMES) + 1] -= 1
    return table


class ADE20KDataset(SegDataset):
    defaults = {'class_names': list(CLASS_NAMES), 'ignore_index': 255}
    vflip = False  # photos have an up
    # no official table of 150 colours here: VOC's scheme gives distinct ones (black unused)
    palette = colormap(len(CLASS_NAMES) + 1)[1:]
    label_map = shift_down()

    @staticmethod
    def find(args, is_train):
        root = data_root(args, ('images', 'annotations'), 'ADEChallengeData2016')
        img_dir, flag, name = split_folder(os.path.join(root, 'images'), args, is_train, SPLITS)
        images = sorted(glob.glob(os.path.join(glob.escape(img_dir), '*.jpg')))
        if not images:
            raise no_samples(flag, name, f'{img_dir} holds no .jpg images')
        # the label of images/<split>/<id>.jpg is annotations/<split>/<id>.png
        label_dir = os.path.join(root, 'annotations', name)
        return [(img, os.path.join(label_dir, os.path.basename(img)[:-len('.jpg')] + '.png'),
                 os.path.relpath(img, root)) for img in images]

    @staticmethod
    def split_name(args):
        """ade20k_<split>, e.g. ade20k_validation."""
        return f'ade20k_{split(args, False, SPLITS)[1]}'
