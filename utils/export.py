"""Writing a model to ONNX (torch.export) or TorchScript (torch.jit.trace) and running the
written file, for export.py, whose docstring says why these exporters. A failed export is one
ConfigError line that names the op or the line of the model, and what to try."""
import contextlib
import io
import logging
import os
import re
import traceback
import warnings

import torch

from utils.checkpoint import atomic_write
from utils.errors import ConfigError

SUFFIX = {'onnx': '.onnx', 'torchscript': '.torchscript.pt'}  # after the checkpoint's name
NEEDS = {'onnx': ('onnx', 'onnxscript', 'onnxruntime'), 'torchscript': ()}  # packages
TRACED = 'any: a trace records none (other_size runs another)'


def export_onnx(model, example, path, args):
    from torch.export import Dim
    dims = {0: Dim.AUTO, 2: Dim.AUTO, 3: Dim.AUTO}  # (B, 3, H, W): dynamic where the model allows
    try:
        with exporter_quiet():
            program = torch.onnx.export(model, (example,), dynamo=True, opset_version=args.opset,
                                        input_names=['image'], output_names=['logits'],
                                        dynamic_shapes=(dims,), external_data=False,
                                        verbose=False)
    except Exception as e:  # the exporter's own message is pages long: one line of it
        raise ConfigError(onnx_failure(e, args.opset)) from None
    atomic_write(path, lambda f: f.write(program.model_proto.SerializeToString()))


@contextlib.contextmanager
def exporter_quiet():
    """Without torch.export's chatter (warnings, graphs printed when it fails: pages): its error
    becomes the one line of onnx_failure. Its log handlers write to the stderr of import time,
    so they are muted by level; its prints, by redirecting."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def onnx_failure(e, opset):
    """One line out of the exporter's report: the op it has no ONNX function for, or the line of
    the model that torch.export could not follow, and what to try."""
    text = str(e)
    op = re.search(r"No ONNX function found for <OpOverload\(op='([^']+)'", text)
    if op:
        return (f'ONNX export failed: opset {opset} has no ONNX function for the op {op[1]}: '
                'try another --opset (e.g. 20), --format torchscript, or write that layer with '
                'supported ops')
    cause = re.search(r"## Exception summary\s+<class '(?:[\w.]*\.)?(\w+)'>: ([^\n]+)", text)
    call = re.search(r'raised this error:\s+File "([^"]+)", line (\d+), in \w+\s+([^\n]+)', text)
    what = f'{cause[1]}: {cause[2].strip()}' if cause else first_line(e)
    where = f' at {call[1]}:{call[2]} `{call[3].strip()}`' if call else ''
    return (f'ONNX export failed{where}: {what}; a branch on a tensor\'s value needs tensor ops '
            '(torch.where) or torch.cond; or try --format torchscript')


def first_line(e):
    return f'{type(e).__name__}: {(str(e).strip().splitlines() or [""])[0]}'


@contextlib.contextmanager
def jit_warnings():
    """A TracerWarning becomes an error: the trace would be wrong for other inputs. torch.jit's
    notice that it is deprecated in favour of torch.export is left out: --format onnx is the
    lasting path, said in the docstring."""
    with warnings.catch_warnings():
        warnings.simplefilter('error', torch.jit.TracerWarning)
        warnings.filterwarnings('ignore', r'`torch\.jit\.', FutureWarning)
        yield


def export_torchscript(model, example, path, args):
    with jit_warnings():
        try:
            traced = torch.jit.trace(model, example, check_trace=False)
        except Exception as e:
            raise ConfigError(trace_failure(e)) from None
        atomic_write(path, lambda f: torch.jit.save(traced, f))


def trace_failure(e):
    """One line: the line of the model where tracing failed or fixed a value, and what to try."""
    torch_dir = os.path.dirname(torch.__file__)
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if not f.filename.startswith(torch_dir)]
    where = f' at {frames[-1].filename}:{frames[-1].lineno} `{frames[-1].line}`' if frames else ''
    # raised from C++ (Tensor.__bool__), the warning arrives as the cause of a SystemError
    warning = e if isinstance(e, torch.jit.TracerWarning) else e.__cause__
    if isinstance(warning, torch.jit.TracerWarning):
        return (f'TorchScript export (torch.jit.trace) failed{where}: {first_line(warning)}: a '
                'branch on a tensor\'s value would be fixed in the trace; use tensor ops '
                '(torch.where), or try --format onnx')
    return f'TorchScript export (torch.jit.trace) failed{where}: {first_line(e)}; try --format onnx'


def onnx_runner(path):
    """(run(x) -> logits, what the file says of its opset, inputs and outputs)."""
    import onnx
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    opset = next(o.version for o in onnx.load(path).opset_import if o.domain in ('', 'ai.onnx'))
    about = {'opset': opset, 'inputs': described(session.get_inputs()),
             'outputs': described(session.get_outputs())}
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0]), about


def described(values):
    """Name, shape (a name for each dynamic axis) and type of ONNX Runtime's inputs or outputs."""
    return [{'name': v.name, 'shape': v.shape, 'type': v.type} for v in values]


def torchscript_runner(path):
    with jit_warnings():
        traced = torch.jit.load(path, map_location='cpu')
    # the forward's argument names (`x.1`: TorchScript numbers them); the first is `self`
    names = [v.debugName().split('.')[0] for v in traced.graph.inputs()][1:]
    # a trace records no symbolic shapes: the second size below shows which axes follow the input
    return traced, {'inputs': [{'name': n, 'shape': TRACED} for n in names],
                    'outputs': [{'name': 'logits', 'shape': TRACED}]}


# --format -> (write the file, load it as (run, about)); export.py picks one
EXPORTERS = {
    'onnx': (export_onnx, onnx_runner),
    'torchscript': (export_torchscript, torchscript_runner),
}
