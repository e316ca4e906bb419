"""Exports the model of a checkpoint (its EMA weights when trained with --ema, as eval.py scores
it) to ONNX or TorchScript beside the checkpoint, then checks the file against PyTorch on the
run's validation images and on another batch and image size, into <file>.verify.json.
Run: python export.py [--load_model_path checkpoints/<run>/best.pth] [--format onnx|torchscript]
ONNX goes through torch.onnx.export(dynamo=True), i.e. torch.export: the default of torch 2.14,
whose TorchScript-based exporter (dynamo=False) warns that it will be removed; each batch, height
and width axis stays dynamic unless the model fixes it, and a branch on a tensor's value is an
error, not one branch silently baked in. TorchScript goes through torch.jit.trace, as
torch.jit.script rejects the U-Nets here (a ModuleList indexed by a loop variable); a
TracerWarning (a value the trace fixes) is an error. Both in float32 on the CPU.
ONNX needs onnx, onnxscript and onnxruntime: pip install -r requirements-dev.txt."""
import hashlib
import importlib.util
import itertools
import json
import logging
import os
import sys

import torch
import torch.nn.functional as F

from data.data_entry import close_loaders, select_eval_loader
from model.model_entry import load_trained
from options import checkpoint_args, chosen_classes, make_parser, parse_export_args
from utils.checkpoint import write_text
from utils.checks import check_inputs
from utils.errors import ConfigError, run_cli
from utils.export import EXPORTERS, NEEDS, SUFFIX, TRACED, first_line
from utils.input_size import input_multiple, pad_to_multiple
from utils.run_dir import setup_logging
from utils.weights import weights_key

log = logging.getLogger('torchbase')


def prepare_export_args(argv=None):
    """The flags, those not given taken from the checkpoint as in eval.py, and the checkpoint;
    checked before anything is written."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = parse_export_args(make_parser('Export a checkpoint to ONNX or TorchScript and check '
                                           'it on validation images. Flags of the model and '
                                           'data not given take the checkpoint\'s values.'))
    args = parser.parse_args(argv)
    missing = [name for name in NEEDS[args.format] if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f'--format {args.format} needs {", ".join(missing)}, not installed: '
                          f'pip install {" ".join(missing)} (or -r requirements-dev.txt)')
    if args.verify_batches < 1 or args.atol < 0:
        raise ConfigError(f'--verify_batches {args.verify_batches} --atol {args.atol}: give at '
                          'least 1 batch and a tolerance of 0 or more, e.g. 2 and 1e-4')
    read = {}
    checkpoint_args(argv, args, read)
    check_inputs(args, False, chosen_classes(args), ckpt=read['ckpt'])
    if not args.out:
        args.out = os.path.splitext(args.load_model_path)[0] + SUFFIX[args.format]
    return args, read['ckpt']


def validation_images(args):
    """The inputs of the first --verify_batches validation batches, as the dataset gives them."""
    loader = select_eval_loader(args)
    try:
        return [img for img, _ in itertools.islice(loader, args.verify_batches)]
    finally:
        close_loaders(loader)


def dynamic_axes(about):
    """The axes of (B, 3, H, W) the file leaves free: named, not numbered, in ONNX's inputs."""
    shape = about['inputs'][0]['shape']
    if shape == TRACED:
        return [0, 2, 3]
    return [i for i in (0, 2, 3) if not isinstance(shape[i], int)]


def other_size(img, axes):
    """`img` with one more image and 1.5 x the height, 0.75 x the width, on the free `axes`."""
    if 0 in axes:
        img = torch.cat([img, img[:1]])
    height, width = img.shape[-2:]
    size = (height * 3 // 2 if 2 in axes else height, width * 3 // 4 if 3 in axes else width)
    return F.interpolate(img, size=size, mode='bilinear', align_corners=False)


@torch.no_grad()
def compare(model, run, img, atol):
    """PyTorch's logits against the exported model's on `img`: the largest absolute difference
    and the share of positions whose argmax (the class) is the same."""
    ref = model(img)  # (B, C, H, W) or (B, C) logits
    try:
        out = run(img)
    except Exception as e:  # e.g. a size the file fixed
        return {'input_shape': list(img.shape), 'error': first_line(e), 'passed': False}
    if out.shape != ref.shape:
        return {'input_shape': list(img.shape), 'error': f'output shape {list(out.shape)}, '
                f'PyTorch\'s {list(ref.shape)}', 'passed': False}
    diff = (out - ref).abs().max().item()
    agree = (out.argmax(1) == ref.argmax(1)).float().mean().item()
    return {'input_shape': list(img.shape), 'max_abs_diff': diff, 'argmax_agreement': agree,
            'passed': diff <= atol and agree == 1.0}


def say(name, check, atol):
    """Logs both numbers of a check: the largest difference and the argmax agreement."""
    if 'error' in check:
        log.info(f'{name} {check["input_shape"]}: FAILED, {check["error"]}')
    else:
        log.info(f'{name} {check["input_shape"]}: max abs diff {check["max_abs_diff"]:.3g} '
                 f'(<= {atol:g}: {check["max_abs_diff"] <= atol}), argmax identical at '
                 f'{100 * check["argmax_agreement"]:.2f}% of positions')


def versions(fmt):
    """The versions of torch and of the packages that wrote and ran the file."""
    names = ('torch',) + NEEDS[fmt]
    return {name: getattr(importlib.import_module(name), '__version__', '?') for name in names}


def verify(model, args, ckpt, batches):
    """Runs the written file on `batches` and on another size, and writes the report beside it;
    returns the report."""
    run, about = EXPORTERS[args.format][1](args.out)
    checks = [compare(model, run, img, args.atol) for img in batches]
    axes = dynamic_axes(about)
    other = pad_to_multiple(other_size(batches[0], axes), input_multiple(model))
    second = compare(model, run, other, args.atol)
    for i, check in enumerate(checks):
        say(f'validation batch {i + 1}', check, args.atol)
    say(f'another size (free axes {axes})', second, args.atol)
    with open(args.out, 'rb') as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    report = {
        'format': args.format,
        'file': os.path.abspath(args.out),
        'sha256': sha256,
        **about,  # opset (ONNX), inputs and outputs: names and shapes
        'dynamic_axes': axes,
        'input': 'images as the dataset gives them: normalized float32 (B, 3, H, W)',
        # > 1: H and W must be multiples of it; pad right and bottom with 0 (utils/input_size.py)
        'input_multiple': input_multiple(model),
        'checkpoint': os.path.abspath(args.load_model_path),
        'checkpoint_sha256': args.checkpoint_sha256,
        'weights': weights_key(ckpt) or 'state dict',
        'model_type': args.model_type,
        'tolerance': {'max_abs_diff': args.atol, 'argmax': 'identical'},
        'validation_batches': checks,
        'other_size': second,
        'passed': all(c['passed'] for c in checks + [second]),
        'versions': versions(args.format),
    }
    write_text(args.out + '.verify.json', json.dumps(report, indent=2) + '\n')
    return report


def main(argv=None):
    setup_logging(None)  # no folder of its own: the report beside the file is its record
    log.setLevel(logging.INFO)
    args, ckpt = prepare_export_args(argv)
    model = load_trained(args, ckpt)[0]
    # padded to the model's input_multiple: the file takes the sizes the model takes
    batches = [pad_to_multiple(img, input_multiple(model)) for img in validation_images(args)]
    # a batch of 1 would let torch.export fix the batch size at 1
    example = batches[0] if len(batches[0]) > 1 else batches[0].repeat(2, 1, 1, 1)
    EXPORTERS[args.format][0](model, example, args.out, args)
    log.info(f'Exported {args.format}: {args.out}')
    report = verify(model, args, ckpt, batches)
    if not report['passed']:
        other = 'another --opset or ' if args.format == 'onnx' else ''
        raise ConfigError(f'{args.out} does not give PyTorch\'s logits within --atol {args.atol} '
                          f'with the same argmax (see {args.out}.verify.json): a forward that '
                          'reads Python state or random numbers is fixed at export; else try '
                          f'{other}the other --format')
    log.info(f'Verified: {args.out}.verify.json')
    return report


if __name__ == '__main__':
    run_cli(main)
