"""Messy files, as real datasets hold them (issue 13): each is read one defined way, or refused
with one line naming the list line and the file; never a traceback, never a silent partial
decode. Every file is a real one written into tmp_path."""
import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from data.image_io import image_size, read_image, read_label
from data.list_dataset import ListDataset, read_list
from tests.conftest import make_args
from utils.checks import check_samples
from utils.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PALETTE = np.array([[128, 0, 0], [0, 128, 0], [0, 0, 128]], np.uint8)  # class i = PALETTE[i]


def scene(h=30, w=40):
    """An (h, w, 3) uint8 RGB image of noise: a turn, flip or swap of channels shows."""
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def classes(h=30, w=40, n=3):
    """An (h, w) uint8 label of classes 0..n-1 in turn."""
    return (np.arange(h * w) % n).reshape(h, w).astype(np.uint8)


def save(path, array, **kw):
    """Writes `array` (RGB, RGBA, grey...) with PIL, which picks the mode from its shape."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return str(path)


def cut_short(path, kept):
    """Keeps the first `kept` of the file at `path`, as an interrupted copy does."""
    with open(path, 'r+b') as f:
        f.truncate(int(os.path.getsize(path) * kept))


def error_of(read, *args):
    with pytest.raises(ConfigError) as e:
        read(*args)
    return str(e.value)


def dataset(list_path):
    """The `list` dataset of one list file, as validation reads it."""
    return ListDataset(make_args(train_list=str(list_path), val_list=str(list_path)), False)


@pytest.fixture
def torchbase_log():
    """The messages logged to 'torchbase' during the test (a run may have stopped propagation)."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger('torchbase').addHandler(handler)
    yield messages
    logging.getLogger('torchbase').removeHandler(handler)


def test_grey_and_rgba_images_are_read_as_rgb_without_alpha(tmp_path):
    rgb = scene()
    grey = rgb[:, :, 0]
    cases = {
        'grey.png': (grey, np.dstack([grey] * 3)),
        'grey_alpha.png': (np.dstack([grey, grey // 2]), np.dstack([grey] * 3)),
        'rgba.png': (np.dstack([rgb, grey]), rgb),
    }
    for name, (stored, expected) in cases.items():
        img = read_image(save(tmp_path / name, stored), 'l.txt:1')
        assert img.dtype == np.uint8 and np.array_equal(img, expected), name


@pytest.mark.parametrize('top, bits', [(4095, 12), (1000, 10), (65535, 16), (200, 8)])
def test_16_bit_image_is_scaled_by_the_bits_its_values_use(tmp_path, top, bits):
    values = np.linspace(0, top, 30 * 40).round().astype(np.uint16).reshape(30, 40)
    rgb16 = np.dstack([values, values // 2, values // 4])
    cv2.imwrite(str(tmp_path / 'a.png'), rgb16[:, :, ::-1])  # cv2 writes BGR
    img = read_image(str(tmp_path / 'a.png'), 'l.txt:1')
    expected = np.floor(rgb16 * (255 / (2 ** bits - 1)) + 0.5).astype(np.uint8)
    assert img.dtype == np.uint8 and np.array_equal(img, expected)
    assert img.max() == round(top * 255 / (2 ** bits - 1))  # 12-bit: 255, never 15


def test_float_image_is_refused(tmp_path):
    cv2.imwrite(str(tmp_path / 'a.tiff'), scene().astype(np.float32))
    assert error_of(read_image, str(tmp_path / 'a.tiff'), 'l.txt:4') == (
        f'l.txt:4: image {tmp_path / "a.tiff"} holds 3 channels of float32: expected 8 or '
        '16-bit grey, RGB or RGBA; convert it to such a PNG')


def test_palette_label_gives_its_indices_never_its_colours(tmp_path):
    label = Image.frombytes('P', (40, 30), classes().tobytes())
    label.putpalette(PALETTE.ravel().tolist())
    label.save(tmp_path / 'l.png')
    for palette in (None, PALETTE):
        assert np.array_equal(read_label(str(tmp_path / 'l.png'), 'l.txt:1', palette), classes())


@pytest.mark.parametrize('values', [
    np.array([0, 1, 255], np.uint8),
    np.array([0, 300, 1000], np.uint16),
    np.array([False, True, True]),  # a 1-bit PNG
])
def test_single_channel_label_gives_its_values(tmp_path, values):
    stored = values[classes()]
    label = read_label(save(tmp_path / 'l.png', stored), 'l.txt:1')
    assert label.dtype == (np.uint8 if values.dtype == bool else values.dtype)
    assert np.array_equal(label, stored)


def test_colour_label_is_mapped_through_the_palette(tmp_path):
    path = save(tmp_path / 'l.png', PALETTE[classes()])
    assert np.array_equal(read_label(path, 'l.txt:1', PALETTE), classes())
    colours = PALETTE[classes()]
    colours[:7, 0] = (1, 2, 3)  # 7 pixels of a colour of no class
    path = save(tmp_path / 'l.png', colours)
    assert error_of(read_label, path, 'l.txt:1', PALETTE) == (
        f"l.txt:1: label {path} holds colours that are not in the dataset's palette of 3: "
        '(1, 2, 3) in 7 pixels; paint those pixels a class colour, or add the colours to the '
        'palette')


def test_colour_label_without_palette_is_refused_unless_it_is_grey(tmp_path):
    grey = classes()
    path = save(tmp_path / 'grey.png', np.dstack([grey] * 3))
    assert np.array_equal(read_label(path, 'l.txt:1'), grey)
    path = save(tmp_path / 'colour.png', PALETTE[classes()])
    assert error_of(read_label, path, 'l.txt:1') == (
        f'l.txt:1: label {path} is an RGB colour image ((0, 0, 128) in 400 pixels, '
        '(0, 128, 0) in 400 pixels, (128, 0, 0) in 400 pixels), and this dataset has no '
        'palette to map colours to classes: convert it to a single-channel or palette PNG of '
        'class indices, or use a dataset with a palette (see data/seg_dataset.py)')


def test_exif_orientation_is_applied_to_neither_image_nor_label(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
    save(tmp_path / 'tagged.jpg', scene(), exif=exif, quality=95)
    save(tmp_path / 'plain.jpg', scene(), quality=95)
    save(tmp_path / 'tagged.png', classes(), exif=exif)
    assert cv2.imread(str(tmp_path / 'tagged.jpg')).shape == (40, 30, 3)  # the tag is there
    (tmp_path / 'l.txt').write_text('tagged.jpg tagged.png\n')
    img, label = dataset(tmp_path / 'l.txt').load(0)
    assert img.shape == (30, 40, 3) and label.shape == (30, 40)
    assert np.array_equal(img, read_image(str(tmp_path / 'plain.jpg'), 'l.txt:1'))
    assert np.array_equal(label, classes())
    assert image_size(str(tmp_path / 'tagged.jpg'), 'l.txt:1') == (30, 40)


@pytest.mark.parametrize('name', ['a.jpg', 'a.png'])
def test_truncated_image_names_line_and_file_and_decodes_nothing(tmp_path, capfd, name):
    path = save(tmp_path / name, scene())
    cut_short(path, 2 / 3)
    message = error_of(read_image, path, 'l.txt:3')
    assert message.startswith(f'l.txt:3: cannot read {path}: truncated or corrupt (image file '
                              'is truncated')
    assert message.endswith('); copy it again, or leave its line out')
    assert capfd.readouterr().err == ''  # no "Premature end of JPEG file" from a partial decode


def test_empty_image_file_is_no_image(tmp_path):
    (tmp_path / 'a.png').write_bytes(b'')  # as a full disk can leave one
    assert error_of(read_image, str(tmp_path / 'a.png'), 'l.txt:5') == (
        f'l.txt:5: cannot read {tmp_path / "a.png"}: not an image, or a corrupt one')


def test_bytes_after_the_end_marker_are_no_truncation(tmp_path):
    path = save(tmp_path / 'a.jpg', scene())
    before = read_image(path, 'l.txt:1')
    with open(path, 'ab') as f:
        f.write(b'\0' * 100)  # as some cameras and tools leave
    assert np.array_equal(read_image(path, 'l.txt:1'), before)


def test_truncated_label_names_line_and_file(tmp_path):
    path = save(tmp_path / 'l.png', classes())
    cut_short(path, 1 / 2)
    assert error_of(read_label, path, 'l.txt:2') == (
        f'l.txt:2: cannot read label {path}: not an image, or a truncated or corrupt one '
        '(image file is truncated)')


def test_list_with_bom_and_crlf_is_read(tmp_path):
    (tmp_path / 'l.txt').write_bytes(b'\xef\xbb\xbfa.png a_l.png\r\nb.png b_l.png\r\n')
    where = str(tmp_path / 'l.txt')
    assert read_list(where) == [
        (str(tmp_path / 'a.png'), str(tmp_path / 'a_l.png'), f'{where}:1'),
        (str(tmp_path / 'b.png'), str(tmp_path / 'b_l.png'), f'{where}:2'),
    ]


def test_gbk_list_naming_chinese_files_is_read_with_one_warning(tmp_path, torchbase_log):
    save(tmp_path / '图像.png', scene())
    save(tmp_path / '标注.png', classes())
    (tmp_path / 'l.txt').write_bytes('图像.png 标注.png\r\n'.encode('gbk'))
    with pytest.raises(UnicodeDecodeError):  # the file is no UTF-8: what is tested here
        (tmp_path / 'l.txt').read_bytes().decode('utf-8')
    img, label = dataset(tmp_path / 'l.txt').load(0)
    read_list(str(tmp_path / 'l.txt'))  # a second read: no second warning
    assert np.array_equal(img, scene()) and np.array_equal(label, classes())
    assert torchbase_log == [
        f'warning: {tmp_path / "l.txt"} is not UTF-8: read as GB18030 (GBK); save it as UTF-8 '
        'to be sure that its paths are read as written'
    ]


def test_list_in_neither_utf8_nor_gb18030_is_refused(tmp_path):
    (tmp_path / 'l.txt').write_bytes('a.png b.png\n# café\n'.encode('latin-1'))
    assert error_of(read_list, str(tmp_path / 'l.txt')) == (
        f'{tmp_path / "l.txt"}:2: not a text file of `image_path label_path` lines (byte 0xe9 at '
        'offset 17 is not UTF-8 text, nor GB18030); pass the list file, saved as UTF-8')


def test_paths_with_spaces_are_separated_by_tabs(tmp_path):
    image = save(tmp_path / 'my images' / 'a 1.png', scene())
    label = save(tmp_path / 'my labels' / 'a 1.png', classes())
    (tmp_path / 'l.txt').write_text('my images/a 1.png\tmy labels/a 1.png\n')
    img, lab = dataset(tmp_path / 'l.txt').load(0)
    assert np.array_equal(img, read_image(image, '')) and np.array_equal(lab, classes())
    assert read_list(str(tmp_path / 'l.txt'))[0][:2] == (image, label)
    (tmp_path / 'spaces.txt').write_text('my images/a 1.png my labels/a 1.png\n')
    assert error_of(read_list, str(tmp_path / 'spaces.txt')) == (
        f"{tmp_path / 'spaces.txt'}:1: expected `image_path label_path`, got 'my images/a 1.png "
        "my labels/a 1.png' (6 fields split at spaces); for paths with spaces, separate the "
        'fields with a tab: a line holding a tab is split at tabs only')


def test_line_naming_a_folder_says_it_is_a_directory(tmp_path):
    save(tmp_path / 'images' / 'a.png', scene())
    save(tmp_path / 'l.png', classes())
    (tmp_path / 'l.txt').write_text('images l.png\n')
    assert error_of(dataset(tmp_path / 'l.txt').load, 0) == (
        f'{tmp_path / "l.txt"}:1: cannot read {tmp_path / "images"}: it is a directory, not a '
        'file (a line holds `image_path label_path`)')


def test_chinese_paths_are_read_where_cv2_imread_cannot_open_them(tmp_path, monkeypatch):
    imread = cv2.imread  # on Windows, cv2.imread finds no file at a non-ASCII path
    monkeypatch.setattr(cv2, 'imread', lambda p, *a: imread(p, *a) if p.isascii() else None)
    image = save(tmp_path / '数据' / '图像 一.png', scene())
    label = save(tmp_path / '数据' / '标注 一.png', classes())
    line = '数据/图像 一.png\t数据/标注 一.png\n'  # paths with spaces: tab-separated
    (tmp_path / 'l.txt').write_text(line, encoding='utf-8')
    img, lab = dataset(tmp_path / 'l.txt').load(0)
    assert np.array_equal(img, scene()) and np.array_equal(lab, classes())
    assert image_size(image, '') == (30, 40) and read_label(label, '').shape == (30, 40)


def messy_dataset(root):
    """A folder of one good sample and one of each problem, and its list `train.txt`, written in
    GBK with CRLF; returns the message part expected for each bad line."""
    save(root / '好.png', scene())
    save(root / '好_l.png', classes())
    save(root / 'turned_l.png', classes(40, 30))
    save(root / 'seven_l.png', np.where(classes() == 2, 7, classes()).astype(np.uint8))
    save(root / 'cut.jpg', scene())
    cut_short(root / 'cut.jpg', 2 / 3)
    save(root / 'colour_l.png', PALETTE[classes()])
    (root / 'folder').mkdir()
    lines = ['好.png 好_l.png', '好.png turned_l.png', '好.png seven_l.png',
             'cut.jpg 好_l.png', '好.png colour_l.png', 'folder 好_l.png']
    (root / 'train.txt').write_bytes('\r\n'.join(lines).encode('gbk'))
    (root / 'val.txt').write_bytes(lines[0].encode('gbk'))
    return {
        2: f'label {root / "turned_l.png"} is 30 x 40, its image {root / "好.png"} 40 x 30',
        3: 'holds class 7, expected 0..3 (--num_classes) or 255 (--ignore_index); values found: '
           '[0, 1, 7]',
        4: f'cannot read {root / "cut.jpg"}: truncated or corrupt',
        5: f'label {root / "colour_l.png"} is an RGB colour image',
        6: f'cannot read {root / "folder"}: it is a directory, not a file',
    }


def test_check_data_reports_every_bad_sample_with_sizes_and_values(tmp_path):
    expected = messy_dataset(tmp_path)
    with pytest.raises(ConfigError) as e:
        check_samples(dataset(tmp_path / 'train.txt'))
    lines = str(e.value).splitlines()
    assert lines[0] == '--check_data: 5 of 6 samples cannot be used:'
    for (n, text), line in zip(expected.items(), lines[1:6], strict=True):
        assert line.startswith(f'  {tmp_path / "train.txt"}:{n}: ') and text in line, line
    assert lines[6:] == ['  label values found in the other samples: [0, 1, 2]']


def test_check_data_of_a_messy_list_is_one_error_line_and_no_run_folder(tmp_path):
    expected = messy_dataset(tmp_path / 'data')
    p = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'train.py'), '--check_data', '--crop_size', '32',
         '--train_list', str(tmp_path / 'data' / 'train.txt'),
         '--val_list', str(tmp_path / 'data' / 'val.txt'),
         '--checkpoints_dir', str(tmp_path / 'checkpoints')],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert p.returncode == 1 and 'Traceback' not in p.stderr, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith('error:')]
    assert errors == ['error: --check_data: 5 of 6 samples cannot be used:'], p.stderr
    for n, text in expected.items():
        assert f'train.txt:{n}: ' in p.stderr and text in p.stderr, p.stderr
    assert 'read as GB18030 (GBK)' in p.stderr
    assert sorted(os.listdir(tmp_path)) == ['data']  # no run folder, no checkpoints folder
