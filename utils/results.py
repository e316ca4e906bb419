"""What eval.py writes beside result.txt for a report: metrics.csv (a score and the support of each
class), confusion.png (the confusion matrix, each row normalized) and worst.txt (the images with
the lowest score of their own). Called by the Evaluator with the sums of its metric."""
import csv
import io
import os

import cv2
import numpy as np

from utils.checkpoint import write_text
from utils.viz import FONT, TITLE_HEIGHT, save_image, text_strip

CELL = 64  # pixels per cell of confusion.png: room for the share and the count under it
NAMES = 110  # pixels for the class names left of the rows and above the columns
NAME_CHARS = 14  # names are cut to what NAMES holds


def metrics_csv(scores, confusion, class_names, per_class):
    """The text of metrics.csv: `class,<per_class>,support` then one row per class, its score as
    result.txt shows it (scores[f'{per_class}_<name>']) and its support: the pixels or images of
    that class in the truth (the confusion matrix's row sums)."""
    out = io.StringIO()
    rows = csv.writer(out, lineterminator='\n')
    rows.writerow(['class', per_class, 'support'])
    for name, support in zip(class_names, confusion.sum(1).tolist(), strict=True):
        rows.writerow([name, f'{scores[f"{per_class}_{name}"]:.4f}', support])
    return out.getvalue()


def draw_cell(canvas, top, left, share, count):
    """One cell: blue as dark as the share of its row, the share with its count under it
    (`-` for a row with no truth)."""
    if np.isnan(share):
        canvas[top:top + CELL, left:left + CELL] = 220  # grey: no image or pixel of this class
        lines = ['-']
    else:
        canvas[top:top + CELL, left:left + CELL] = np.round(255 - share * np.array([200, 130, 0]))
        lines = [f'{share:.2f}', str(count)]
    ink = (255, 255, 255) if not np.isnan(share) and share > 0.5 else (0, 0, 0)
    for i, line in enumerate(lines):
        width = cv2.getTextSize(line, FONT, 0.4, 1)[0][0]
        at = (left + (CELL - width) // 2, top + CELL // 2 - 4 + 16 * i)
        cv2.putText(canvas, line, at, FONT, 0.4, ink, 1, cv2.LINE_AA)


def names_column(class_names):
    """(len * CELL, NAMES, 3) uint8: each name level with its row of cells."""
    column = np.full((len(class_names) * CELL, NAMES, 3), 255, np.uint8)
    for i, name in enumerate(class_names):
        at = (4, i * CELL + CELL // 2 + 4)
        cv2.putText(column, name[:NAME_CHARS], at, FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return column


def confusion_picture(confusion, class_names):
    """(TITLE_HEIGHT + NAMES + C * CELL, NAMES + C * CELL, 3) uint8 RGB of a (C, C) confusion
    matrix (rows = true class): each row divided by its sum, true classes named on the left,
    predicted ones (turned upright) above."""
    cm = np.asarray(confusion, np.int64)
    n = len(class_names)
    with np.errstate(invalid='ignore', divide='ignore'):  # a row with no truth: nan
        shares = cm / cm.sum(1, keepdims=True)
    grid = np.full((n * CELL, n * CELL, 3), 255, np.uint8)
    for row in range(n):
        for col in range(n):
            draw_cell(grid, row * CELL, col * CELL, shares[row, col], cm[row, col])
    grid[::CELL], grid[:, ::CELL] = 128, 128  # the cells' borders
    above = np.rot90(names_column(class_names)).copy()  # (NAMES, n * CELL): read bottom up
    corner = np.full((NAMES, NAMES, 3), 255, np.uint8)
    body = np.concatenate([np.concatenate([corner, above], axis=1),
                           np.concatenate([names_column(class_names), grid], axis=1)])
    title = text_strip('rows: truth, columns: prediction (share of the row, count)',
                       body.shape[1], TITLE_HEIGHT)
    return np.concatenate([title, body])


def worst_txt(scored, n=10):
    """The text of worst.txt: the n (or all if fewer) lowest-scoring of [(path, score)], one
    `path<TAB>score` line each, lowest first (ties by path, so it does not depend on the order
    the processes gave them; an image with no scored pixel, nan, last)."""
    worst = sorted(scored, key=lambda item: (np.isnan(item[1]), item[1], item[0]))[:n]
    return ''.join(f'{path}\t{score:.4f}\n' for path, score in worst)


def write_report(folder, metric, scores, scored):
    """metrics.csv and confusion.png of a metric with a confusion matrix in its sums and a
    per_class score name (metrics.py's demos), worst.txt of [(path, score)] `scored` if any: a
    metric without them gets none of these files."""
    confusion = metric.sums.get('confusion')
    per_class = getattr(metric, 'per_class', None)
    if confusion is not None and per_class:
        confusion, names = confusion.cpu(), metric.class_names
        write_text(os.path.join(folder, 'metrics.csv'),
                   metrics_csv(scores, confusion, names, per_class))
        save_image(os.path.join(folder, 'confusion.png'), confusion_picture(confusion, names))
    if scored:
        write_text(os.path.join(folder, 'worst.txt'), worst_txt(scored))
