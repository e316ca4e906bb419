"""FolderDataset (--data_type folder): your own data, as <data_root>/images/<split>/**/<name>.jpg
(or .jpeg .png .bmp .tif .tiff) with its label <data_root>/labels/<split>/**/<name>.png; splits
train and val unless --train_split / --val_split say otherwise. Give --class_names (or
--num_classes). The checks every layout under --data_root makes (voc, cityscapes, ...) live here."""
import glob
import os

from data.seg_dataset import SegDataset
from utils.errors import ConfigError

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')


def data_root(args, holds, example):
    """--data_root, checked to hold the folders `holds`; else a ConfigError naming what is
    missing and what --data_root must be (`example`, e.g. VOCdevkit/VOC2012)."""
    root = args.data_root
    what = f'--data_type {args.data_type} reads --data_root {example}: the folder holding '
    what += ', '.join(f'{sub}/' for sub in holds)
    if not root:
        raise ConfigError(f'{what}; pass it')
    if not os.path.isdir(root):
        raise ConfigError(f'--data_root {root} is not a folder; {what}')
    for sub in holds:
        if not os.path.isdir(os.path.join(root, sub)):
            # given the folder above it (VOCdevkit/ for VOCdevkit/VOC2012): say which one it is
            inner = [d for d in sorted(glob.glob(os.path.join(glob.escape(root), '*')))
                     if os.path.isdir(os.path.join(d, sub))]
            hint = f' (pass --data_root {inner[0]})' if inner else ''
            raise ConfigError(f'--data_root {root} has no {os.path.join(root, sub)}{hint}; '
                              f'{what}')
    return root


def split(args, is_train, default):
    """(flag, name) of the split read: --train_split or --val_split, else default[0] or [1]."""
    if is_train:
        return '--train_split', args.train_split or default[0]
    return '--val_split', args.val_split or default[1]


def split_folder(parent, args, is_train, default):
    """(parent/<split>, flag, split name), or a ConfigError listing the splits there."""
    flag, name = split(args, is_train, default)
    path = os.path.join(parent, name)
    if not os.path.isdir(path):
        have = sorted(entry.name for entry in os.scandir(parent) if entry.is_dir())
        raise ConfigError(f'{flag} {name}: there is no folder {path}; pass {flag} one of: '
                          f'{", ".join(have) or "(none: the folder is empty)"}')
    return path, flag, name


def no_samples(flag, name, looked):
    return ConfigError(f'{flag} {name}: no samples, {looked}; pass {flag} a split that has '
                       'some, or --data_root the right folder')


def by_name(folder, exts):
    """{relative path without extension: path} of the files under `folder` with one of `exts`."""
    found = {}
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), '**', '*'), recursive=True)):
        name, ext = os.path.splitext(os.path.relpath(path, folder))
        if ext.lower() not in exts or not os.path.isfile(path):
            continue
        if name in found:  # a.jpg and a.png: which one does a.png's label belong to?
            raise ConfigError(f'{found[name]} and {path} have the same name: which is the '
                              'image of its label is unclear; rename or remove one')
        found[name] = path
    return found


def check_pairs(images, labels, img_dir, label_dir):
    """A ConfigError listing the first few images without a label and labels without an
    image, with how many there are."""
    alone = [images[k] for k in sorted(images.keys() - labels.keys())]
    orphans = [labels[k] for k in sorted(labels.keys() - images.keys())]
    if alone or orphans:
        first = (alone + orphans)[:5]
        raise ConfigError(f'{len(alone)} images in {img_dir} have no label (a .png of the same '
                          f'relative path in {label_dir}) and {len(orphans)} labels have no '
                          f'image, e.g. {", ".join(first)}; add the missing files or remove these')


class FolderDataset(SegDataset):
    # no class names of its own: options.task_defaults asks for --class_names or --num_classes
    defaults = {'class_names': None, 'ignore_index': 255}
    vflip = False  # photos have an up

    @staticmethod
    def find(args, is_train):
        root = data_root(args, ('images', 'labels'), 'DIR')
        img_dir, flag, name = split_folder(os.path.join(root, 'images'), args, is_train,
                                           ('train', 'val'))
        label_dir = os.path.join(root, 'labels', name)
        if not os.path.isdir(label_dir):
            raise ConfigError(f'{flag} {name}: there is no folder {label_dir} for the labels of '
                              f'{img_dir}; make it, with one .png per image')
        images, labels = by_name(img_dir, IMAGE_EXTS), by_name(label_dir, ('.png',))
        if not images:
            raise no_samples(flag, name, f'{img_dir} holds no {"/".join(IMAGE_EXTS)} images')
        check_pairs(images, labels, img_dir, label_dir)
        return [(images[k], labels[k], os.path.relpath(images[k], root)) for k in sorted(images)]

    @staticmethod
    def split_name(args):
        """<data_root's name>_<split>, e.g. mydata_val."""
        folder = os.path.basename(os.path.normpath(args.data_root))
        return f'{folder}_{split(args, False, ("train", "val"))[1]}'
