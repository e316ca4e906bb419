"""Pictures of predictions: colour a label map, and the `input | prediction | ground truth`
panel that TensorBoard shows during training and eval.py saves with --save_viz."""
import cv2
import numpy as np

# One colour per class index; classes past the list get a fixed pseudo-random colour.
PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 190],
], np.uint8)
IGNORE_COLOUR = np.array([255, 255, 255], np.uint8)


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


def make_panel(img, pred, gt, ignore_index=255, palette=None):
    """(H, W, 3) uint8 image, (H, W) predicted and true labels -> one (H, 3W + 8, 3) uint8
    picture, the labels in `palette`'s colours (see colorize)."""
    gap = np.full((img.shape[0], 4, 3), 255, np.uint8)
    panels = [img, gap, colorize(pred, ignore_index, palette), gap,
              colorize(gt, ignore_index, palette)]
    return np.concatenate(panels, axis=1)


def save_image(path, img):
    """Writes an (H, W, 3) uint8 RGB image (PNG by the file's extension)."""
    if not cv2.imwrite(path, np.ascontiguousarray(img[:, :, ::-1])):  # cv2 expects BGR
        raise OSError(f'could not write image {path}')


def class_picture(img, predicted, truth, size=128):
    """An (H, W, 3) uint8 image scaled up to `size` pixels wide (nearest neighbour: the pixels the
    model saw), above two lines of text: `pred: <predicted>` (green when it names the true class,
    else red) and `true: <truth>`."""
    scale = max(1, round(size / img.shape[1]))
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    caption = np.full((36, big.shape[1], 3), 255, np.uint8)
    right = predicted.split()[0] == truth
    colour = (0, 140, 0) if right else (200, 0, 0)  # RGB
    cv2.putText(caption, f'pred: {predicted}', (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1,
                cv2.LINE_AA)
    cv2.putText(caption, f'true: {truth}', (2, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([big, caption], axis=0)


def overlay(img, label, names, palette=None, alpha=0.5):
    """predict.py's picture of a class map: the (H, W) `label` in `palette`'s colours (see
    colorize) blended over the (H, W, 3) uint8 image, above a legend of the classes it holds."""
    blend = cv2.addWeighted(img, 1 - alpha, colorize(label, -1, palette), alpha, 0)
    present = np.unique(label).tolist()
    colours = colorize(np.array(present), -1, palette)  # (N, 3): the same colour each
    width = max(img.shape[1], 160)  # room for a class name under a narrow image
    blend = np.pad(blend, ((0, 0), (0, width - img.shape[1]), (0, 0)), constant_values=255)
    rows = np.full((16 * len(present), width, 3), 255, np.uint8)
    for i, (index, colour) in enumerate(zip(present, colours, strict=True)):
        rows[16 * i + 2:16 * i + 14, 2:14] = colour
        name = names[index] if index < len(names) else f'class {index}'
        cv2.putText(rows, name, (18, 16 * i + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return np.concatenate([blend, rows], axis=0)


def captioned(img, text, size=128):
    """predict.py's picture of a class: the (H, W, 3) uint8 image, scaled up as class_picture
    scales it, above one line of `text`."""
    scale = max(1, round(size / img.shape[1]))
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    caption = np.full((20, big.shape[1], 3), 255, np.uint8)
    cv2.putText(caption, text, (2, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([big, caption], axis=0)
