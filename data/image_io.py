"""Reading images and label maps from files, whatever their format: every dataset decodes
through here, so a file quirk is handled once. Errors name `where` (e.g. `list.txt:12`)."""
import os

import cv2
import numpy as np
from PIL import Image

from utils.errors import ConfigError


def check_exists(path, where):
    if os.path.isdir(path):
        raise ConfigError(f'{where}: cannot read {path}: it is a directory, not a file')
    if not os.path.isfile(path):
        raise ConfigError(f'{where}: cannot read {path}: no such file')


def read_image(path, where):
    """The image at `path` as an (H, W, 3) uint8 RGB array."""
    check_exists(path, where)
    img = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None:
        raise ConfigError(f'{where}: cannot read {path}: not an image, or a corrupt one')
    return img[:, :, ::-1]  # cv2 decodes to BGR


def read_label(path, where, palette=None):
    """The label map at `path` as an (H, W) array of the values stored: a palette PNG gives its
    indices (as VOC stores classes), a single-channel image its values."""
    check_exists(path, where)
    try:
        with Image.open(path) as f:
            label = np.asarray(f)
    except OSError as e:
        raise ConfigError(f'{where}: cannot read label {path}: {e}') from None
    if label.ndim != 2:
        raise ConfigError(f'{where}: label {path} has shape {label.shape}: expected a '
                          'single-channel or palette image of class indices')
    return label


def image_size(path, where):
    """(H, W) of the image at `path`, from its header only."""
    check_exists(path, where)
    try:
        with Image.open(path) as f:
            return f.height, f.width
    except OSError:
        raise ConfigError(f'{where}: cannot read {path}: not an image, or a corrupt one') from None
