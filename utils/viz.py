"""Pictures of predictions: colour a label map, and the titled `input | prediction | truth` panel
with a legend of its classes that TensorBoard shows during training and eval.py saves with
--save_viz. Small images are scaled up (nearest neighbour: the pixels the model saw)."""
import math

import cv2
import numpy as np

# One colour per class index; classes past the list get a fixed pseudo-random colour.
PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190],
], np.uint8)
IGNORE_COLOUR = np.array([255, 255, 255], np.uint8)
MIN_HEIGHT = 192  # pictures of smaller images are scaled up to at least this many pixels tall
TITLE_HEIGHT = 20  # the strip above each panel that names it
LEGEND_ROW = 16  # one legend line per class: its colour, then its name
GAP = 4  # white columns between panels
FONT = cv2.FONT_HERSHEY_SIMPLEX


def colorize(label, ignore_index=255, palette=None):
    """(H, W) integer class indices -> (H, W, 3) uint8 RGB; ignored pixels are white.
    palette: (K, 3) uint8 RGB colours of the classes (the dataset's), or None for PALETTE."""
    label = np.asarray(label).astype(np.int64)
    known = PALETTE if palette is None else np.asarray(palette, np.uint8)
    top = int(label[label != ignore_index].max(initial=0))
    extra = np.random.default_rng(0).integers(0, 256, (max(top + 1 - len(known), 0), 3))
    colours = np.concatenate([known, extra.astype(np.uint8)])
    out = colours[np.clip(label, 0, len(colours) - 1)]
    out[label == ignore_index] = IGNORE_COLOUR
    return out


def scale_up(img, min_height=MIN_HEIGHT):
    """img repeated by a whole factor (nearest neighbour) so it is at least min_height tall."""
    scale = max(1, math.ceil(min_height / img.shape[0]))
    return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)


def text_strip(text, width, height=TITLE_HEIGHT, colour=(0, 0, 0)):
    """A white (height, width, 3) strip with one line of black (or `colour`, RGB) text."""
    strip = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(strip, text, (2, height - 6), FONT, 0.4, colour, 1, cv2.LINE_AA)
    return strip


def titled(panels, titles):
    """(H, W, 3) uint8 panels of one height side by side, GAP white columns apart, each under a
    TITLE_HEIGHT strip with its title."""
    columns = []
    for panel, title in zip(panels, titles, strict=True):
        columns.append(np.concatenate([text_strip(title, panel.shape[1]), panel]))
        columns.append(np.full((columns[-1].shape[0], GAP, 3), 255, np.uint8))
    return np.concatenate(columns[:-1], axis=1)


def legend(classes, names, palette, width):
    """(LEGEND_ROW * len(classes), width, 3) uint8: a line per class index, its colour and name."""
    rows = np.full((LEGEND_ROW * len(classes), width, 3), 255, np.uint8)
    colours = colorize(np.array(classes), -1, palette)  # (N, 3): the colour each has in pictures
    for i, (index, colour) in enumerate(zip(classes, colours, strict=True)):
        rows[LEGEND_ROW * i + 2:LEGEND_ROW * i + 14, 2:14] = colour
        name = names[index] if names and index < len(names) else f'class {index}'
        cv2.putText(rows, name, (18, LEGEND_ROW * i + 12), FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return rows


def make_panel(img, pred, gt, ignore_index=255, palette=None, names=None):
    """(H, W, 3) uint8 image, (H, W) predicted and true labels -> one uint8 RGB picture: the three
    scaled up (see scale_up) under the titles input, prediction, truth, above a legend of the
    classes either label map holds (names: the class names; None: `class <index>`)."""
    panels = [scale_up(img), scale_up(colorize(pred, ignore_index, palette)),
              scale_up(colorize(gt, ignore_index, palette))]
    top = titled(panels, ['input', 'prediction', 'truth'])
    present = np.union1d(np.unique(pred), np.unique(gt))
    present = [int(c) for c in present if c != ignore_index]
    return np.concatenate([top, legend(present, names, palette, top.shape[1])])


def save_image(path, img):
    """Writes an (H, W, 3) uint8 RGB image (PNG by the file's extension)."""
    if not cv2.imwrite(path, np.ascontiguousarray(img[:, :, ::-1])):  # cv2 expects BGR
        raise OSError(f'could not write image {path}')


def class_picture(img, predicted, truth):
    """An (H, W, 3) uint8 image scaled up (see scale_up) under the title `input`, above two lines
    of text: `pred: <predicted>` (green when it names the true class, else red) and
    `true: <truth>`."""
    big = titled([scale_up(img)], ['input'])
    right = predicted.split()[0] == truth
    colour = (0, 140, 0) if right else (200, 0, 0)  # RGB
    return np.concatenate([big, text_strip(f'pred: {predicted}', big.shape[1], colour=colour),
                           text_strip(f'true: {truth}', big.shape[1])])


def overlay(img, label, names, palette=None, alpha=0.5):
    """predict.py's picture of a class map: the (H, W) `label` in `palette`'s colours (see
    colorize) blended over the (H, W, 3) uint8 image, scaled up under the title `prediction`,
    above a legend of the classes it holds."""
    blend = cv2.addWeighted(img, 1 - alpha, colorize(label, -1, palette), alpha, 0)
    top = titled([scale_up(blend)], ['prediction'])
    width = max(top.shape[1], 160)  # room for a class name under a narrow image
    top = np.pad(top, ((0, 0), (0, width - top.shape[1]), (0, 0)), constant_values=255)
    return np.concatenate([top, legend(np.unique(label).tolist(), names, palette, width)])


def captioned(img, text):
    """predict.py's picture of a class: the (H, W, 3) uint8 image, scaled up under the title
    `input`, above one line of `text`."""
    big = titled([scale_up(img)], ['input'])
    return np.concatenate([big, text_strip(text, big.shape[1])])
