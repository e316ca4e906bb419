"""Is our data pipeline as fast as the libraries'? On VOC- and Cityscapes-like files
(scripts/fake_datasets.py), times decode + rescale + crop + flip + normalize to a tensor: ours
(data/augment.py), torchvision.transforms.v2, albumentations (when installed), with 0 and 2
DataLoader workers, alternating; then the base model's training step, which the loader must
outpace. scripts/benchmark.py prints the table (--data_only: only this one)."""
import statistics
import time

import cv2
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset

from loss import select_loss
from model.model_entry import select_model
from scripts import benchmark_pipelines as pipes
from scripts import fake_datasets
from scripts.benchmark_pipelines import CROP

BATCH = 8  # train.py's default --batch_size
WORKERS = (0, 2)
IMAGES = {'voc': 96, 'cityscapes': 32}  # a timed epoch's images


class Samples(Dataset):
    """`count` samples cycling over `files`, decoded and passed through `pipeline`."""

    def __init__(self, files, pipeline, count):
        self.files, self.pipeline, self.count = files, pipeline, count

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return self.pipeline(*pipes.decode(self.files[index % len(self.files)]), index)


def loader_rate(files, pipeline, workers, count):
    """Images per second of a DataLoader of `count` samples, batches of BATCH."""
    loader = DataLoader(Samples(files, pipeline, count), batch_size=BATCH, num_workers=workers,
                        persistent_workers=workers > 0)
    if workers:  # an untimed epoch: the workers' start is not what a long run sees
        sum(1 for _ in loader)
    start = time.perf_counter()
    images = sum(len(label) for _, label in loader)
    return images / (time.perf_counter() - start)


def transform_ms(decoded, pipeline, count):
    """Milliseconds an image of the pipeline's own work, on decoded images, in this process."""
    start = time.perf_counter()
    for index in range(count):
        pipeline(*decoded[index % len(decoded)], index)
    return (time.perf_counter() - start) / count * 1000


def train_rate(args, steps=2):
    """Images per second of the training step (Adam, --loss) of the model that `args` name, on
    batches of BATCH crops of CROP x CROP, after one untimed step: the median of `steps`."""
    model, criterion = select_model(args).train(), select_loss(args)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    img = torch.randn(BATCH, 3, CROP, CROP)  # (B, 3, H, W)
    label = torch.randint(0, args.num_classes, (BATCH, CROP, CROP))  # (B, H, W)
    seconds = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = criterion(model(img), label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - start)
    return BATCH / statistics.median(seconds[1:])


def median_of(values):
    return {'median': statistics.median(values), 'all': values}


def time_pipelines(files, pipelines, rounds, count):
    """{pipeline name: {setting: img/s or ms}} and the shared decode's ms an image. Each setting
    runs every pipeline in turn; which goes first rotates by round, so drift favours none."""
    decoded = [pipes.decode(sample) for sample in files[:4]]
    runs, decode_ms = {p.name: {} for p in pipelines}, []
    for r in range(rounds):
        order = pipelines[r % len(pipelines):] + pipelines[:r % len(pipelines)]
        start = time.perf_counter()
        for sample in files:
            pipes.decode(sample)
        decode_ms.append((time.perf_counter() - start) / len(files) * 1000)
        for p in order:
            runs[p.name].setdefault('transform_ms', []).append(transform_ms(decoded, p, count))
        for workers in WORKERS:
            for p in order:
                rate = loader_rate(files, p, workers, count)
                runs[p.name].setdefault(f'workers_{workers}', []).append(rate)
    figures = {name: {k: median_of(v) for k, v in run.items()} for name, run in runs.items()}
    return figures, median_of(decode_ms)


def ours_over_fastest_other(figures):
    """Per setting, our speed over the fastest other pipeline's (> 1: ours is faster)."""
    med = {name: {k: v['median'] for k, v in run.items()} for name, run in figures.items()}
    others = [name for name in med if name != 'ours']
    ratios = {'transform_ms': min(med[o]['transform_ms'] for o in others) /
              med['ours']['transform_ms']}
    for workers in WORKERS:
        key = f'workers_{workers}'
        ratios[key] = med['ours'][key] / max(med[o][key] for o in others)
    return ratios


def measure(args, rounds, root):
    """Every figure of the table; the files are written under `root`. `args`: train.py's, of
    the model whose training step the loader must outpace."""
    datasets = {}
    for kind, (width, height, ext, *_) in fake_datasets.KINDS.items():
        files, kb = fake_datasets.write(root, kind)
        pipelines = pipes.make_pipelines(short_side=min(width, height))
        figures, decode_ms = time_pipelines(files, pipelines, rounds, IMAGES[kind])
        datasets[kind] = {'size': [width, height], 'format': ext, 'file_kb': kb,
                          'decode_ms': decode_ms, 'pipelines': figures,
                          'ours_over_fastest_other': ours_over_fastest_other(figures)}
    train = train_rate(args)
    for figures in datasets.values():
        ours = figures['pipelines']['ours']
        figures['loader_over_step'] = {
            f'workers_{w}': ours[f'workers_{w}']['median'] / train for w in WORKERS}
    return {'crop': CROP, 'scale_range': list(pipes.SCALE_RANGE), 'batch_size': BATCH,
            'rounds': rounds, 'torchvision': torchvision.__version__,
            'albumentations': pipes.albumentations_version(), 'cv2': cv2.__version__,
            'model_type': args.model_type, 'train_img_per_s': train, 'datasets': datasets}


def print_table(f):
    print(f"\ndata: decode + rescale {f['scale_range'][0]}-{f['scale_range'][1]} + crop "
          f"{f['crop']} + flip + normalize, batches of {f['batch_size']}; medians of "
          f"{f['rounds']} rounds; torchvision {f['torchvision']}, albumentations "
          f"{f['albumentations'] or 'not installed (pip install albumentations to compare)'}")
    print(f"{'':<24}{'transform':>10}{'0 workers':>12}{'2 workers':>12}")
    print(f"{'':<24}{'ms/img':>10}{'img/s':>12}{'img/s':>12}")
    for kind, d in f['datasets'].items():
        (width, height), decode_ms = d['size'], d['decode_ms']['median']
        print(f"{kind}: {width} x {height} {d['format'].upper()}, {d['file_kb']:.0f} KB a "
              f"file; decode {decode_ms:.1f} ms an image (shared)")
        for name, p in d['pipelines'].items():
            print(f"  {name:<22}{p['transform_ms']['median']:>10.2f}"
                  f"{p['workers_0']['median']:>12.1f}{p['workers_2']['median']:>12.1f}")
        r, step = d['ours_over_fastest_other'], d['loader_over_step']
        print(f"  {'ours / fastest other':<22}{r['transform_ms']:>9.2f}x"
              f"{r['workers_0']:>11.2f}x{r['workers_2']:>11.2f}x")
        print(f"  {'ours / training step':<22}{'':>10}"
              f"{step['workers_0']:>11.0f}x{step['workers_2']:>11.0f}x")
    print(f"training step: {f['model_type']} model, {f['batch_size']} crops of {f['crop']} x "
          f"{f['crop']}: {f['train_img_per_s']:.2f} img/s on this CPU (the loader must give "
          '>= 2x)')
