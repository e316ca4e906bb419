"""The dataset layouts read from --data_root (data/voc.py, cityscapes.py, ade20k.py, folder.py):
tiny copies laid out as the real datasets ship, their labels read as class indices, their splits,
their errors, their colours in pictures, and a training + eval.py run on each (slow)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import eval as evaluate
import train
from data.data_entry import get_dataset_by_type
from data.voc import colormap
from task.seg import SegTask
from tests.conftest import make_args
from utils.errors import ConfigError
from utils.viz import GAP, MIN_HEIGHT, TITLE_HEIGHT, colorize, make_panel

SIZES = ((30, 40), (40, 30))  # (H, W) of the two images of each split: batches of one size
VOC_IDS = {'train': ('2007_000032', '2007_000039'), 'val': ('2007_000033', '2008_000001')}
CITIES = {'train': ('aachen', 'bochum'), 'val': ('frankfurt', 'lindau')}
# the label values each layout stores, and the class indices they must be read as
STORED = {'voc': (0, 15, 255), 'cityscapes': (7, 26, 0, 1), 'ade20k': (0, 1, 150, 12),
          'folder': (0, 2, 255, 1)}
CLASSES = {'voc': (0, 15, 255), 'cityscapes': (0, 13, 255, 255), 'ade20k': (255, 0, 149, 11),
           'folder': (0, 2, 255, 1)}
SPLIT_NAMES = {'voc': 'voc_val', 'cityscapes': 'cityscapes_val', 'ade20k': 'ade20k_validation',
               'folder': 'mydata_val'}
FOLDER_NAMES = ['sky', 'road', 'car']  # folder data has no names of its own: given as flags


def bands(h, w, values):
    """(h, w) uint8 label of horizontal bands, one per value, top to bottom."""
    rows = np.array(values, np.uint8)[np.arange(h) * len(values) // h]
    return np.repeat(rows[:, None], w, axis=1)


def write_image(path, h, w):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_label(path, label, palette=None):
    """A single-channel PNG, or with `palette` a palette ('P') PNG as VOC stores its labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(label, 'P' if palette is not None else 'L')
    if palette is not None:
        img.putpalette(palette.flatten().tolist())
    img.save(path)


def make_voc(tmp_path):
    """VOCdevkit/VOC2012 with two images a split (and trainval); returns VOC2012."""
    root = tmp_path / 'VOCdevkit' / 'VOC2012'
    splits = root / 'ImageSets' / 'Segmentation'
    for split, ids in VOC_IDS.items():
        for i, (h, w) in zip(ids, SIZES, strict=True):
            write_image(root / 'JPEGImages' / f'{i}.jpg', h, w)
            write_label(root / 'SegmentationClass' / f'{i}.png', bands(h, w, STORED['voc']),
                        colormap(256))  # VOC's own PNG palette: 255 is (224, 224, 192)
        splits.mkdir(parents=True, exist_ok=True)
        (splits / f'{split}.txt').write_text(''.join(f'{i}\n' for i in ids))
    (splits / 'trainval.txt').write_text(''.join(f'{i}\n' for i in sum(VOC_IDS.values(), ())))
    return root


def make_cityscapes(tmp_path):
    root = tmp_path / 'cityscapes'
    for split, cities in CITIES.items():
        for city, (h, w) in zip(cities, SIZES, strict=True):
            frame = f'{city}_000000_000019'
            write_image(root / 'leftImg8bit' / split / city / f'{frame}_leftImg8bit.png', h, w)
            gt = root / 'gtFine' / split / city
            write_label(gt / f'{frame}_gtFine_labelIds.png', bands(h, w, STORED['cityscapes']))
            write_label(gt / f'{frame}_gtFine_instanceIds.png', np.zeros((h, w), np.uint8))
    return root


def make_ade20k(tmp_path):
    root = tmp_path / 'ADEChallengeData2016'
    for split, prefix in (('training', 'ADE_train'), ('validation', 'ADE_val')):
        for n, (h, w) in enumerate(SIZES, 1):
            write_image(root / 'images' / split / f'{prefix}_{n:08d}.jpg', h, w)
            write_label(root / 'annotations' / split / f'{prefix}_{n:08d}.png',
                        bands(h, w, STORED['ade20k']))
    return root


def make_folder(tmp_path):
    """mydata/images/<split>/ with a subfolder and two formats, labels/<split>/ as .png."""
    root = tmp_path / 'mydata'
    for split, names in (('train', ('a.jpg', 'sub/b.png')), ('val', ('c.bmp', 'sub/d.jpg'))):
        for name, (h, w) in zip(names, SIZES, strict=True):
            write_image(root / 'images' / split / name, h, w)
            stem = name.rsplit('.', 1)[0]
            write_label(root / 'labels' / split / f'{stem}.png', bands(h, w, STORED['folder']))
    return root


LAYOUTS = {'voc': make_voc, 'cityscapes': make_cityscapes, 'ade20k': make_ade20k,
           'folder': make_folder}


def layout_args(data_type, root, **kw):
    """make_args for `data_type` read from `root` (folder data: with its class names)."""
    names = {'class_names': FOLDER_NAMES} if data_type == 'folder' else {}
    return make_args(data_type=data_type, data_root=str(root), **names, **kw)


@pytest.mark.parametrize('data_type', list(LAYOUTS))
def test_labels_are_read_as_class_indices(tmp_path, data_type):
    args = layout_args(data_type, LAYOUTS[data_type](tmp_path))
    for is_train in (True, False):
        ds = get_dataset_by_type(args, is_train)
        assert len(ds) == 2
        wheres = [where for _, _, where in ds.samples]
        assert wheres == sorted(wheres) or data_type == 'voc'  # VOC: the split file's order
        for i, (h, w) in enumerate(SIZES):
            img, label = ds.load(i)
            assert img.shape == (h, w, 3) and ds.size(i) == (h, w)
            np.testing.assert_array_equal(label, bands(h, w, CLASSES[data_type]))


def test_where_names_the_file_or_split_file_line(tmp_path):
    for data_type, first in (('voc', 'ImageSets/Segmentation/train.txt:1'),
                             ('cityscapes', 'leftImg8bit/val/frankfurt/frankfurt_000000_000019'
                                            '_leftImg8bit.png'),
                             ('ade20k', 'images/validation/ADE_val_00000001.jpg'),
                             ('folder', 'images/val/c.bmp')):
        args = layout_args(data_type, LAYOUTS[data_type](tmp_path))
        ds = get_dataset_by_type(args, data_type == 'voc')
        assert ds.samples[0][2].endswith(first), (data_type, ds.samples[0][2])


def test_dataset_class_names_and_palette_come_from_the_layout(tmp_path):
    voc = make_args(data_type='voc')
    assert voc.num_classes == 21 and voc.class_names[15] == 'person'
    city = make_args(data_type='cityscapes')
    assert city.num_classes == 19 and city.class_names[13] == 'car'
    ade = make_args(data_type='ade20k')
    assert ade.num_classes == 150 and ade.class_names[:3] == ['wall', 'building', 'sky']
    assert ade.class_names[-1] == 'flag' and len(set(ade.class_names)) == 150
    # VOC's colours: class i's bits spread over the top bits of R, G, B
    assert colormap(21)[[0, 1, 15, 20]].tolist() == [[0, 0, 0], [128, 0, 0], [192, 128, 128],
                                                      [0, 64, 128]]
    assert colormap(256)[255].tolist() == [224, 224, 192]  # the boundary colour


def test_voc_split_files_are_honoured(tmp_path):
    root = make_voc(tmp_path)
    ds = get_dataset_by_type(layout_args('voc', root, val_split='trainval'), False)
    assert [where.rsplit('/', 1)[1] for _, _, where in ds.samples] == [
        'trainval.txt:1', 'trainval.txt:2', 'trainval.txt:3', 'trainval.txt:4']
    ds = get_dataset_by_type(layout_args('voc', root, train_split='val'), True)
    assert [img.rsplit('/', 1)[1] for img, _, _ in ds.samples] == [
        f'{i}.jpg' for i in VOC_IDS['val']]
    with pytest.raises(ConfigError, match=r'--val_split test: .*test.txt; pass --val_split one '
                                          r'of: train, trainval, val'):
        get_dataset_by_type(layout_args('voc', root, val_split='test'), False)
    (root / 'ImageSets' / 'Segmentation' / 'empty.txt').write_text('\n')
    with pytest.raises(ConfigError, match=r'--val_split empty: no samples, .*empty.txt lists no'):
        get_dataset_by_type(layout_args('voc', root, val_split='empty'), False)


def test_voc_wrong_roots_say_what_data_root_must_hold(tmp_path):
    root = make_voc(tmp_path)
    devkit = root.parent
    with pytest.raises(ConfigError, match=rf'--data_root {devkit} has no {devkit}/JPEGImages '
                                          rf'\(pass --data_root {root}\); .*VOCdevkit/VOC2012'):
        get_dataset_by_type(layout_args('voc', devkit), False)
    with pytest.raises(ConfigError, match=r'reads --data_root VOCdevkit/VOC2012: the folder '
                                          r'holding JPEGImages/, SegmentationClass/'):
        get_dataset_by_type(layout_args('voc', None), False)
    with pytest.raises(ConfigError, match=rf'--data_root {tmp_path}/nowhere is not a folder'):
        get_dataset_by_type(layout_args('voc', tmp_path / 'nowhere'), False)


def test_cityscapes_and_ade20k_splits_and_missing_files(tmp_path):
    city = make_cityscapes(tmp_path)
    with pytest.raises(ConfigError, match=r'--val_split test: there is no folder .*leftImg8bit/'
                                          r'test; pass --val_split one of: train, val'):
        get_dataset_by_type(layout_args('cityscapes', city, val_split='test'), False)
    (city / 'gtFine/val/lindau/lindau_000000_000019_gtFine_labelIds.png').unlink()
    with pytest.raises(ConfigError, match=r'--val_split val: 1 of 2 images .* have no label, '
                                          r'e.g. .*lindau_000000_000019_gtFine_labelIds.png'):
        get_dataset_by_type(layout_args('cityscapes', city), False)
    ade = make_ade20k(tmp_path)
    for f in (ade / 'images' / 'validation').iterdir():
        f.unlink()
    with pytest.raises(ConfigError, match=r'--val_split validation: no samples, .* no .jpg'):
        get_dataset_by_type(layout_args('ade20k', ade), False)
    write_label(ade / 'annotations/training/ADE_train_00000001.png', bands(30, 40, (151, 1)))
    with pytest.raises(ConfigError, match='holds class 151'):  # not silently ignored
        get_dataset_by_type(layout_args('ade20k', ade), True).load(0)


def test_folder_needs_class_names_or_num_classes(tmp_path):
    root = make_folder(tmp_path)
    with pytest.raises(ConfigError, match=r'--data_type folder has no class names of its own: '
                                          r'pass --class_names NAME .* or --num_classes N'):
        make_args(data_type='folder', data_root=str(root))
    args = make_args(data_type='folder', data_root=str(root), num_classes=3)
    assert args.class_names == ['class_0', 'class_1', 'class_2']


def test_folder_unmatched_files_are_named_and_counted(tmp_path):
    root = make_folder(tmp_path)
    (root / 'labels/val/sub/d.png').unlink()
    write_label(root / 'labels/val/extra/e.png', np.zeros((4, 4), np.uint8))
    write_label(root / 'labels/val/f.png', np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match=r'1 images in .*images/val have no label .* and 2 '
                                          r'labels have no image, e\.g\. .*sub/d\.jpg, '
                                          r'.*extra/e\.png, .*val/f\.png'):
        get_dataset_by_type(layout_args('folder', root), False)
    with pytest.raises(ConfigError, match=r'--train_split none: there is no folder'):
        get_dataset_by_type(layout_args('folder', root, train_split='none'), True)


def test_pictures_use_the_dataset_palette(tmp_path):
    label = np.array([[0, 15], [255, 1]])
    rgb = colorize(label, 255, colormap(21))
    assert rgb.reshape(-1, 3).tolist() == [[0, 0, 0], [192, 128, 128], [255, 255, 255],
                                           [128, 0, 0]]
    img, logits = torch.zeros(3, 2, 2), torch.zeros(21, 2, 2)
    logits[15] = 1  # predicts person everywhere
    for data_type, person in (('voc', [192, 128, 128]), ('list', None)):
        args = make_args(data_type=data_type, class_names=None, num_classes=21)
        panel = SegTask(args, torch.device('cpu')).picture(img, logits, torch.tensor(label))
        s = MIN_HEIGHT // 2  # each 2 x 2 panel scaled up by s, under a title
        cells = panel[TITLE_HEIGHT:TITLE_HEIGHT + 2 * s:s]  # one row of pixels per label row
        if person:
            assert cells[0, 2 * s + GAP].tolist() == person  # the prediction's first pixel
            truth = cells[:, -2 * s::s]
            assert truth.reshape(-1, 3).tolist() == rgb.reshape(-1, 3).tolist()
        else:  # a dataset without a palette: the pictures as before
            default = make_panel(cells[:, :2 * s:s], np.full((2, 2), 15), label, 255, None,
                                 args.class_names)
            np.testing.assert_array_equal(panel, default)


@pytest.mark.slow
@pytest.mark.parametrize('data_type', list(LAYOUTS))
def test_train_and_eval_on_each_layout(tmp_path, data_type):
    root, checkpoints = LAYOUTS[data_type](tmp_path), tmp_path / 'checkpoints'
    names = ['--class_names', *FOLDER_NAMES] if data_type == 'folder' else []
    train.main(['--data_type', data_type, '--data_root', str(root), *names,
                '--model_type', 'base', '--epochs', '1', '--batch_size', '2', '--crop_size', '24',
                '--num_workers', '0', '--checkpoints_dir', str(checkpoints)])
    run = checkpoints / 'base_exp'
    evaluate.main(['--load_model_path', str(run / 'best.pth'), '--num_workers', '0'])
    result_dir = run / 'best' / f'{SPLIT_NAMES[data_type]}_exp'
    result = dict(line.split(': ', 1) for line in
                  (result_dir / 'result.txt').read_text().splitlines())
    assert 'mIoU' in result and result['num_samples'] == '2'
    assert result['eval_split'] == SPLIT_NAMES[data_type]
    expected = FOLDER_NAMES if data_type == 'folder' else make_args(data_type=data_type).class_names
    for folder in (run, result_dir):
        saved = json.loads((folder / 'args.json').read_text())
        assert saved['class_names'] == expected and saved['data_root'] == str(root)


def test_colour_labels_read_through_the_palette_unless_the_layout_maps_ids(tmp_path):
    """A VOC label saved as RGB colours reads as the palette PNG does (the boundary colour as
    255); Cityscapes' and ADE20K's labels are stored ids to map, so colours are refused."""
    root = make_voc(tmp_path)
    label_path = root / 'SegmentationClass' / f'{VOC_IDS["val"][0]}.png'
    h, w = SIZES[0]
    Image.fromarray(colormap(256)[bands(h, w, STORED['voc'])]).save(label_path)  # RGB now
    ds = get_dataset_by_type(layout_args('voc', root), False)
    np.testing.assert_array_equal(ds.load(0)[1], bands(h, w, CLASSES['voc']))
    city = make_cityscapes(tmp_path)
    label_path = sorted(city.glob('gtFine/val/*/*_labelIds.png'))[0]
    h, w = np.asarray(Image.open(label_path)).shape
    Image.fromarray(np.full((h, w, 3), (128, 64, 128), np.uint8)).save(label_path)  # road's
    ds = get_dataset_by_type(layout_args('cityscapes', city), False)
    with pytest.raises(ConfigError, match=str(label_path)):
        ds.load(0)


def test_a_16_bit_label_beyond_the_label_map_is_a_clear_error(tmp_path):
    root = make_ade20k(tmp_path)
    label_path = sorted(root.glob('annotations/validation/*.png'))[0]
    h, w = np.asarray(Image.open(label_path)).shape
    Image.fromarray(np.full((h, w), 300, np.uint16)).save(label_path)
    ds = get_dataset_by_type(layout_args('ade20k', root), False)
    with pytest.raises(ConfigError, match='holds the value 300; this dataset stores 0..255'):
        ds.load(0)
