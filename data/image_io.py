"""Reading images and label maps from files, whatever their format: every dataset decodes
through here, so a file quirk is handled once. Errors name `where` (e.g. `list.txt:12`).
EXIF orientation is applied to neither images nor labels, so the two always stay aligned: both are
read as the pixels are stored (a photo viewer may show a tagged photo turned)."""
import io
import os

import cv2
import numpy as np
from PIL import Image

from utils.errors import ConfigError

# what a complete file of each format ends with: a copy cut short lacks it
END_MARKER = {b'\xff\xd8': b'\xff\xd9', b'\x89PNG\r\n\x1a\n': b'IEND\xaeB`\x82'}


def check_exists(path, where):
    if os.path.isdir(path):
        raise ConfigError(f'{where}: cannot read {path}: it is a directory, not a file')
    if not os.path.isfile(path):
        raise ConfigError(f'{where}: cannot read {path}: no such file')


def read_bytes(path, where):
    """The bytes of the file at `path`: decoding them works for any path, while cv2.imread
    cannot open a non-ASCII one (e.g. Chinese) on Windows."""
    check_exists(path, where)
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f'{where}: cannot read {path} ({e.strerror}): make it readable') from None


def check_complete(data, path, where):
    """A ConfigError for a JPEG or PNG cut short (an interrupted copy or download), which
    cv2.imread decodes without an error, the missing part grey. The end marker costs nothing
    to check; a file with bytes after its end marker is judged by decoding it with PIL."""
    end = next((e for start, e in END_MARKER.items() if data.startswith(start)), None)
    if end is None or data.endswith(end):
        return
    try:
        with Image.open(io.BytesIO(data)) as f:
            f.load()
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... by format
        raise ConfigError(f'{where}: cannot read {path}: truncated or corrupt ({e}); copy it '
                          'again, or leave its line out') from None


def read_image(path, where):
    """The image at `path` as an (H, W, 3) uint8 RGB array: grey repeated into the 3 channels,
    alpha dropped, 16-bit values scaled to 0..255 (to_8_bit). Decoded by cv2 from the bytes: as
    fast as PIL or torchvision (timed in this file's git log), and it reads BMP, TIFF, WebP."""
    data = read_bytes(path, where)
    check_complete(data, path, where)
    # UNCHANGED keeps 16 bits (IMREAD_COLOR keeps their top 8: 12-bit data becomes 0..15) and,
    # as cv2 documents, leaves the EXIF orientation unapplied; imdecode asserts there are bytes
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if img is None:
        raise ConfigError(f'{where}: cannot read {path}: not an image, or a corrupt one')
    if img.dtype == np.uint16:
        img = to_8_bit(img)
    if img.dtype != np.uint8 or img.ndim == 3 and img.shape[2] not in (3, 4):
        channels = 1 if img.ndim == 2 else img.shape[2]
        raise ConfigError(f'{where}: image {path} holds {channels} channels of {img.dtype}: '
                          'expected 8 or 16-bit grey, RGB or RGBA; convert it to such a PNG')
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return img[:, :, 2::-1]  # cv2 decodes to BGR(A): RGB, without the alpha


def to_8_bit(img):
    """16-bit values scaled to 0..255 by the bits they use: value * 255 / (2**b - 1), b the
    fewest bits (8 at least) that hold the image's largest value. So 12-bit data (0..4095, as
    cameras and scanners save it in 16-bit PNGs) fills 0..255 rather than becoming 0..15, a
    full 16-bit image is scaled as cv2 scales it, and values that fit in 8 bits are kept."""
    bits = max(8, int(img.max()).bit_length())
    return (img * np.float32(255 / (2 ** bits - 1)) + np.float32(0.5)).astype(np.uint8)


def read_label(path, where, palette=None):
    """The label map at `path` as an (H, W) array:
      palette image        its indices, never their colours (as VOC stores classes)
      grey, 8 or 16-bit    its values (a grey+alpha image: the grey)
      RGB(A) colours       with a `palette` ((K, 3) uint8), the class of each colour, class i
                           being colour palette[i]; without one, the values of a grey label
                           saved as RGB (3 equal channels), else an error. Alpha is ignored."""
    check_exists(path, where)
    try:
        with Image.open(path) as f:
            mode = f.mode
            label = np.asarray(f)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... by format
        raise ConfigError(f'{where}: cannot read label {path}: not an image, or a truncated or '
                          f'corrupt one ({e})') from None
    if mode in ('LA', 'PA'):
        label = label[:, :, 0]
    elif mode in ('RGB', 'RGBA', 'RGBX'):
        label = colours_to_classes(label[:, :, :3], palette, path, where)
    if label.ndim != 2 or label.dtype.kind not in 'biu':
        raise ConfigError(f'{where}: label {path} is a PIL mode {mode} image, shape {label.shape}:'
                          ' expected class indices in a single-channel or palette PNG')
    if label.dtype == bool:  # a 1-bit image
        return label.astype(np.uint8)
    return label.astype(label.dtype.newbyteorder('='), copy=False)  # I;16B: big-endian values


def colours_to_classes(rgb, palette, path, where):
    """(H, W) class of each pixel of the (H, W, 3) colour label `rgb` (see read_label)."""
    r, g, b = (rgb[:, :, c].astype(np.int32) for c in range(3))
    codes = r << 16 | g << 8 | b  # (H, W): one number a colour
    if palette is None:
        if (r == g).all() and (g == b).all():  # grey saved as RGB
            return rgb[:, :, 0]
        raise ConfigError(f'{where}: label {path} is an RGB colour image ({colour_list(codes)}), '
                          'and this dataset has no palette to map colours to classes: convert it '
                          'to a single-channel or palette PNG of class indices, or use a dataset '
                          'with a palette (see data/seg_dataset.py)')
    pal = np.asarray(palette, np.int32)
    pal_codes = pal[:, 0] << 16 | pal[:, 1] << 8 | pal[:, 2]
    order = np.argsort(pal_codes, kind='stable')  # a colour listed twice: the first class
    at = np.searchsorted(pal_codes[order], codes).clip(max=len(pal) - 1)
    known = pal_codes[order][at] == codes
    if not known.all():
        raise ConfigError(f'{where}: label {path} holds colours that are not in the dataset\'s '
                          f'palette of {len(pal)}: {colour_list(codes[~known])}; paint those '
                          'pixels a class colour, or add the colours to the palette')
    return order[at].astype(np.uint8 if len(pal) <= 256 else np.int64)


def colour_list(codes, most=5):
    """The commonest colours of `codes` (r << 16 | g << 8 | b), with their pixel counts."""
    colours, counts = np.unique(codes, return_counts=True)
    top = np.argsort(-counts, kind='stable')[:most]
    pairs = zip(colours[top].tolist(), counts[top].tolist(), strict=True)
    listed = ', '.join(f'({c >> 16}, {c >> 8 & 255}, {c & 255}) in {n} pixels' for c, n in pairs)
    more = f' and {len(colours) - most} more colours' if len(colours) > most else ''
    return f'{listed}{more}'


def image_size(path, where):
    """(H, W) of the image at `path`, from its header only."""
    check_exists(path, where)
    try:
        with Image.open(path) as f:
            return f.height, f.width
    except Exception:  # PIL raises OSError, SyntaxError, ValueError... by format
        raise ConfigError(f'{where}: cannot read {path}: not an image, or a corrupt one') from None
