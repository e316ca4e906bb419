"""What a run was made from: the git commit (and uncommitted changes), the environment, and a
hash of each source file that defines its model and data pipeline, so eval.py can say when that
code has changed since."""
import ast
import hashlib
import importlib.metadata
import inspect
import json
import logging
import os
import platform
import re
import subprocess
import sys

import torch

from utils.checkpoint import atomic_write, write_text

log = logging.getLogger('torchbase')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project: train.py's folder


def git(*argv, ok=(0,)):
    """Output of `git <argv>` run in the project, or None when git or the checkout is missing (or
    the exit status is not in `ok`). A list of arguments, never a shell string: nothing the user
    typed is ever run by a shell."""
    try:
        out = subprocess.run(['git', '-C', ROOT, *argv], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    # Bytes that are not UTF-8 (a log with a character split in two, a Latin-1 file) come back as
    # the surrogate escapes that os.fsdecode uses: never an error, and written out again
    # unchanged (write_run_info)
    return out.stdout.decode(errors='surrogateescape') if out.returncode in ok else None


# the patch carries at most this many untracked files, of at most this size
UNTRACKED_SAVED = 50, 256 * 1024


def git_info():
    """{'commit', 'dirty', 'untracked', 'untracked_not_saved', 'diff'}; without a checkout,
    {'commit': None, 'note'}. The diff holds the staged and unstaged changes to tracked files, and
    the untracked files as new ones (a new model package is code too) except big ones or too
    many, likely data: those are only listed."""
    commit = git('rev-parse', 'HEAD')
    if commit is None:
        note = f'{ROOT} is not a git checkout (or git is not installed): no commit recorded'
        return {'commit': None, 'note': note}
    diff = git('diff', 'HEAD', '--binary') or ''
    listed = git('ls-files', '-z', '--others', '--exclude-standard') or ''
    untracked = [f for f in listed.split('\0') if f]
    count, size = UNTRACKED_SAVED
    path = {f: os.path.join(ROOT, f) for f in untracked}
    saved = [f for f in untracked
             if os.path.isfile(path[f]) and os.path.getsize(path[f]) <= size][:count]
    # --no-index compares any two files; exit status 1 means they differ, as they do here
    for f in saved:
        diff += git('diff', '--no-index', '--binary', '--', os.devnull, f, ok=(0, 1)) or ''
    return {'commit': commit.strip(), 'dirty': bool(diff or untracked), 'untracked': untracked,
            'untracked_not_saved': [f for f in untracked if f not in saved], 'diff': diff}


REQUIREMENT_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]*')


def package_versions(files=()):
    """Versions of the packages named in requirements.txt, of numpy, which torch uses, and of
    those that the project `files` import (a model that wraps segmentation_models_pytorch, say,
    even when it is not in requirements.txt)."""
    names = ['numpy'] + imported_distributions(files)
    req = os.path.join(ROOT, 'requirements.txt')
    if os.path.isfile(req):
        with open(req) as f:
            # a requirement starts with its name (PEP 508): `name[extras] ~= 1.0 ; marker` or
            # `name @ URL`; pip's options (-r, --find-links, ...) name none
            names += [m.group() for line in f if (m := REQUIREMENT_NAME.match(line.strip()))]
    versions = {}
    for name in sorted(set(names)):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def imported_distributions(files):
    """The installed distributions whose modules the project `files` import, anywhere in them
    (models often import their package inside __init__), found by the module's name as pip
    compares names (segmentation_models_pytorch is segmentation-models-pytorch). A package
    whose import name differs from its pip name (cv2, PIL) is recorded through requirements.txt
    only: finding its owner means reading every installed package's file list, 0.3 s a run."""
    top = set()
    for f in files:
        with open(os.path.join(ROOT, f), encoding='utf-8') as src:
            tree = ast.parse(src.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                top.update(a.name.split('.')[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                top.add(node.module.split('.')[0])
    own = {os.path.splitext(f)[0] for f in os.listdir(ROOT)}  # data, model, loss, ...
    return sorted(filter(None, map(pip_name, top - sys.stdlib_module_names - own)))


def pip_name(module):
    """The name of the installed distribution called like `module`, as pip lists it; None when
    there is none (a project folder, or cv2)."""
    try:
        return importlib.metadata.distribution(module).metadata['Name']
    except importlib.metadata.PackageNotFoundError:
        return None


def env_info(files=()):
    """Python, the platform, torch, the GPUs and package_versions(files)."""
    cuda = torch.cuda.is_available()
    return {'python': sys.version.split()[0],
            'platform': platform.platform(),
            'torch': torch.__version__,
            'cuda': torch.version.cuda,
            'cudnn': torch.backends.cudnn.version() if cuda else None,
            'gpus': ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                     if cuda else []),
            'packages': package_versions(files)}


def file_sha256(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def project_file(obj):
    """The project file (relative path) that defines `obj`, a class or module; None for one from
    outside the project (torch, numpy, ...) or from utils/, the mechanisms around a run."""
    module = obj if inspect.ismodule(obj) else sys.modules.get(getattr(obj, '__module__', ''))
    path = getattr(module, '__file__', None)
    if not path or module.__name__.split('.')[0] in ('utils', '__main__'):
        return None
    path = os.path.relpath(os.path.abspath(path), ROOT)
    # imported from the project by its own name (not e.g. .venv/.../torch/__init__.py)
    name = module.__name__.replace('.', os.sep)
    return path if path in (f'{name}.py', os.path.join(name, '__init__.py')) else None


def source_files(classes):
    """The project files (relative paths) that define the chosen model, dataset and task classes:
    the file of each class and of its project base classes, the files that those import from the
    project (e.g. model/submodules.py, data/augment.py, loss.py, metrics.py), and every .py of a
    model's package."""
    files = set()
    for cls in classes:
        for module in [sys.modules[c.__module__] for c in cls.__mro__ if project_file(c)]:
            files.add(project_file(module))
            for value in vars(module).values():  # what it imports, one level down
                source = inspect.getmodule(value)
                if source is not None and project_file(source):
                    files.add(project_file(source))
        if not project_file(cls):  # defined outside the project, or in a test module
            continue
        package = os.path.dirname(os.path.join(ROOT, project_file(cls)))
        if os.path.basename(os.path.dirname(package)) == 'model':  # model/<name>/: all of it
            files.update(os.path.relpath(os.path.join(package, f), ROOT)
                         for f in os.listdir(package) if f.endswith('.py'))
    return sorted(files)


def source_hashes(classes):
    """{relative path: sha256} of source_files(classes)."""
    return {f: file_sha256(os.path.join(ROOT, f)) for f in source_files(classes)}


def changed_sources(saved, classes):
    """The files whose content differs between a checkpoint's source hashes and the code now
    (edited, deleted or new)."""
    now = source_hashes(classes)
    changed = [f for f, h in saved.items() if not os.path.isfile(os.path.join(ROOT, f)) or
               (now[f] if f in now else file_sha256(os.path.join(ROOT, f))) != h]
    return sorted(changed + [f for f in now if f not in saved])


def provenance(classes):
    """What every checkpoint of the run carries: {'git': {commit, dirty}, 'source_hashes':
    {file: sha256}} of the chosen model, dataset and task `classes`."""
    info = git_info()
    git_state = {'commit': info['commit'], 'dirty': info.get('dirty', False)}
    return {'git': git_state, 'source_hashes': source_hashes(classes)}


def write_run_info(folder, seed, classes, start_weights=None):
    """Writes run_info.json (commit, uncommitted state, environment, seed, source hashes, and
    the path and sha256 of each file of `start_weights`: {flag: path} of the weights a training
    run starts from) into `folder`, and uncommitted.patch when tracked files have changes (`git
    apply` it on the commit to get the code back)."""
    info = git_info()
    diff = info.pop('diff', '')
    # the bytes git gave, not write_text's UTF-8: `git apply` must get every file back as it was
    if diff:
        patch = diff.encode(errors='surrogateescape')
        atomic_write(os.path.join(folder, 'uncommitted.patch'), lambda f: f.write(patch))
    files = source_files(classes)
    run_info = {'git': info, 'env': env_info(files), 'seed': seed,
                'source_hashes': {f: file_sha256(os.path.join(ROOT, f)) for f in files}}
    if start_weights:  # a path says nothing once the file there is replaced; its hash does
        run_info['start_weights'] = {
            flag: {'path': os.path.abspath(path), 'sha256': file_sha256(path)}
            for flag, path in start_weights.items() if path}
    write_text(os.path.join(folder, 'run_info.json'), json.dumps(run_info, indent=2) + '\n')


def source_check(ckpt, args, classes):
    """`name: value` pairs for result.txt saying whether the model and data code changed since
    `ckpt` was trained, and how to get the code back when it did; the same goes to the log as a
    warning."""
    if 'source_hashes' not in ckpt:
        return {'source_changed': 'unknown (the checkpoint records no source hashes)'}
    saved = ckpt.get('args') if isinstance(ckpt.get('args'), dict) else {}
    trained = saved.get('model_type', args.model_type)
    if trained != args.model_type:  # its hashes are of another model's files
        return {'source_changed': f'not compared: trained as --model_type {trained}, '
                                  f'built as {args.model_type}'}
    changed = changed_sources(ckpt['source_hashes'], classes)
    commit, dirty = ckpt['git']['commit'], ckpt['git']['dirty']
    trained_commit = f'{commit or "unknown"}{" with uncommitted changes" if dirty else ""}'
    found = {'trained_commit': trained_commit,
             'source_changed': ' '.join(changed) or 'none'}
    if changed:
        folder = os.path.dirname(os.path.abspath(args.load_model_path))
        patch = os.path.join(folder, 'uncommitted.patch')
        # a worktree of its own beside the project: the code checked out now, and its edits,
        # stay as they are
        code = os.path.join(os.path.dirname(ROOT), f'{os.path.basename(ROOT)}_{(commit or "")[:8]}')
        restore = (f'git worktree add {code} {commit}' if commit else
                   'the code of the training run (not a git checkout then)')
        if dirty:
            restore += (f' && git -C {code} apply {patch}' if os.path.isfile(patch)
                        else ' plus its uncommitted changes')
        found['source_restore'] = restore
        log.warning('The code that defines this model or its data changed since the checkpoint '
                    f'was trained: {", ".join(changed)}. Results may differ from the training '
                    f'run\'s; to get its code back: {restore}')
    return found
