"""A run folder explains itself (commit, uncommitted changes, environment, source hashes), every
checkpoint carries its commit and source hashes, and eval.py says when the model's code changed
since training."""
import hashlib
import importlib.metadata
import json
import os
import subprocess

import pytest
import torch

import eval as evaluate
import train
from options import chosen_classes
from tests.conftest import make_args
from utils import provenance
from utils.provenance import changed_sources, git_info, source_files, source_hashes, write_run_info


def read_result(path):
    with open(path) as f:
        return dict(line.rstrip('\n').split(': ', 1) for line in f)


@pytest.fixture(scope='module')
def run(shapes, tmp_path_factory):
    checkpoints = tmp_path_factory.mktemp('prov') / 'checkpoints'
    train.main([
        '--train_list', str(shapes / 'train.txt'),
        '--val_list', str(shapes / 'val.txt'),
        '--checkpoints_dir', str(checkpoints),
        '--epochs', '1',
        '--batch_size', '4',
        '--seed', '3',
    ])
    return checkpoints / 'base_exp'


def test_run_folder_records_commit_environment_seed_and_source_hashes(run):
    info = json.loads((run / 'run_info.json').read_text())
    assert info['seed'] == 3
    assert info['env']['torch'] == torch.__version__ and info['env']['packages']['torchvision']
    assert set(info['env']) >= {'python', 'platform', 'cuda', 'gpus', 'packages'}
    git = git_info()
    if git['commit'] is None:
        assert 'not a git checkout' in info['git']['note']
    else:
        assert info['git']['commit'] == git['commit'] and isinstance(info['git']['untracked'], list)
        assert (run / 'uncommitted.patch').exists() == bool(git['diff'])
    # the model's package, the dataset's file, the task's, and the project files they import
    assert set(info['source_hashes']) == {'model/base/__init__.py', 'model/base/base_model.py',
                                          'model/submodules.py', 'data/list_dataset.py',
                                          'data/augment.py', 'data/make_shapes.py', 'task/seg.py',
                                          'data/seg_dataset.py', 'data/image_io.py',
                                          'data/list_file.py', 'loss.py', 'metrics.py'}
    for path, digest in info['source_hashes'].items():
        source = open(os.path.join(provenance.ROOT, path), 'rb').read()
        assert hashlib.sha256(source).hexdigest() == digest


def test_every_checkpoint_carries_args_epoch_best_commit_and_source_hashes(run):
    info = json.loads((run / 'run_info.json').read_text())
    for name in ('last.pth', 'best.pth', 'epoch_1.pth'):
        ckpt = torch.load(run / name, weights_only=True)
        assert ckpt['args']['seed'] == 3 and ckpt['epoch'] == 1 and ckpt['best_metric'] is not None
        assert (
            ckpt['git']['commit'] == info['git']['commit']
            and ckpt['source_hashes'] == info['source_hashes']
        )


def test_source_files_follow_the_chosen_model_and_dataset():
    files = source_files(chosen_classes(make_args(model_type='better', data_type='mem_list')))
    assert files == [
        'data/augment.py',
        'data/image_io.py',
        'data/list_dataset.py',
        'data/list_file.py',
        'data/make_shapes.py',
        'data/mem_list_dataset.py',
        'data/seg_dataset.py',
        'loss.py',
        'metrics.py',
        'model/better/__init__.py',
        'model/better/better_model.py',
        'model/submodules.py',
        'task/seg.py',
    ]


def test_eval_of_unchanged_code_says_so_with_the_checkpoint_hash(run):
    evaluate.main(['--load_model_path', str(run / 'best.pth'), '--save_prefix', 'same'])
    result = read_result(run / 'best' / 'shapes_val_same' / 'result.txt')
    assert result['source_changed'] == 'none'
    best_sha256 = hashlib.sha256((run / 'best.pth').read_bytes()).hexdigest()
    assert result['checkpoint_sha256'] == best_sha256
    assert result['num_samples'] == '6' and result['eval_list'].endswith('val.txt')


def test_eval_names_changed_files_and_how_to_get_the_code_back(run, tmp_path):
    ckpt = torch.load(run / 'best.pth', weights_only=True)
    # as if the file was edited since training
    ckpt['source_hashes']['model/base/base_model.py'] = '0' * 64
    ckpt['git'] = {'commit': 'abc123', 'dirty': True}
    other = tmp_path / 'other_run'
    other.mkdir()
    torch.save(ckpt, other / 'best.pth')
    # what train.py saves beside a dirty tree's checkpoints
    (other / 'uncommitted.patch').write_text('a patch')
    evaluate.main(['--load_model_path', str(other / 'best.pth'), '--save_prefix', 'edited'])
    result_dir = other / 'best' / 'shapes_val_edited'
    result = read_result(result_dir / 'result.txt')
    assert result['source_changed'] == 'model/base/base_model.py'
    assert result['trained_commit'] == 'abc123 with uncommitted changes'
    code = os.path.join(
        os.path.dirname(provenance.ROOT), os.path.basename(provenance.ROOT) + '_abc123'
    )
    assert result['source_restore'] == (
        f'git worktree add {code} abc123 && git -C {code} apply {other / "uncommitted.patch"}'
    )
    log = (result_dir / 'eval.log').read_text()
    assert 'changed since the checkpoint was trained: model/base/base_model.py' in log


def test_changed_sources_sees_edited_deleted_and_new_files():
    now = source_hashes(chosen_classes(make_args()))
    saved = dict(now, **{'model/base/base_model.py': 'x', 'model/base/gone.py': 'y'})
    del saved['data/augment.py']
    changed = changed_sources(saved, chosen_classes(make_args()))
    assert changed == ['data/augment.py', 'model/base/base_model.py', 'model/base/gone.py']


def git(repo, *argv):
    subprocess.run(
        ['git', '-C', str(repo), '-c', 'user.name=t', '-c', 'user.email=t@t', *argv],
        check=True,
        capture_output=True,
    )


def committed_repo(tmp_path):
    """A git repository with one commit of a.py."""
    repo = tmp_path / 'repo'
    repo.mkdir()
    git(repo, 'init', '-q')
    (repo / 'a.py').write_text('x = 1\n')
    git(repo, 'add', 'a.py')
    git(repo, 'commit', '-q', '-m', 'first')
    return repo


def test_dirty_tree_writes_the_patch_and_lists_untracked_files(tmp_path, monkeypatch):
    repo = committed_repo(tmp_path)
    monkeypatch.setattr(provenance, 'ROOT', str(repo))
    assert git_info()['dirty'] is False
    (repo / 'a.py').write_text('x = 2\n')
    (repo / 'new.py').write_text('')
    # the files of this project are not there
    monkeypatch.setattr(provenance, 'source_hashes', lambda classes: {})
    write_run_info(str(tmp_path), 0, ())
    info = json.loads((tmp_path / 'run_info.json').read_text())
    assert info['git']['dirty'] is True and info['git']['untracked'] == ['new.py']
    assert '-x = 1\n+x = 2' in (tmp_path / 'uncommitted.patch').read_text()


def test_the_patch_on_the_commit_gives_back_the_code_untracked_files_included(
        tmp_path, monkeypatch):
    repo = tmp_path / 'repo'
    (repo / 'model' / 'mine').mkdir(parents=True)
    git(repo, 'init', '-q')
    (repo / 'a.py').write_text('x = 1\n')
    (repo / 'gone.py').write_text('y = 1\n')
    git(repo, 'add', '.')
    git(repo, 'commit', '-q', '-m', 'first')
    (repo / 'a.py').write_text('x = 2\n')  # edited, not staged
    (repo / 'gone.py').unlink()
    # a new model package, never added
    (repo / 'model' / 'mine' / 'net.py').write_text('class Net: pass\n')
    too_big = b'\0' * (provenance.UNTRACKED_SAVED[1] + 1)
    (repo / 'model' / 'mine' / 'weights.bin').write_bytes(too_big)
    monkeypatch.setattr(provenance, 'ROOT', str(repo))
    monkeypatch.setattr(provenance, 'source_hashes', lambda classes: {})
    write_run_info(str(tmp_path), 0, ())
    info = json.loads((tmp_path / 'run_info.json').read_text())['git']
    assert info['untracked'] == ['model/mine/net.py', 'model/mine/weights.bin']
    assert info['untracked_not_saved'] == ['model/mine/weights.bin']
    # what source_restore advises: a worktree at the commit, then the patch
    copy = tmp_path / 'copy'
    git(repo, 'worktree', 'add', '-q', str(copy), info['commit'])
    git(copy, 'apply', str(tmp_path / 'uncommitted.patch'))
    assert (copy / 'a.py').read_text() == 'x = 2\n' and not (copy / 'gone.py').exists()
    assert (copy / 'model' / 'mine' / 'net.py').read_text() == 'class Net: pass\n'


def test_outside_a_git_checkout_a_plain_note(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, 'ROOT', str(tmp_path))
    info = git_info()
    assert info['commit'] is None and 'not a git checkout' in info['note']


def test_bytes_that_are_not_utf8_never_stop_a_run_and_come_back_unchanged(tmp_path, monkeypatch):
    """A job log whose progress-bar character srun split across stdout and stderr, left in the
    project: every later train.py read it through git, and a decoding error stopped each at
    start."""
    repo = committed_repo(tmp_path)
    # a cut-off UTF-8 character, then Latin-1
    log = b'train 1/3:  20%|\xe2\x96 | 2/10\nlatin-1: caf\xe9\n'
    (repo / 'slurm-7.out').write_bytes(log)
    (repo / 'a.py').write_bytes(b'x = "caf\xe9"\n')  # a tracked file too
    monkeypatch.setattr(provenance, 'ROOT', str(repo))
    monkeypatch.setattr(provenance, 'source_hashes', lambda classes: {})
    write_run_info(str(tmp_path), 0, ())
    info = json.loads((tmp_path / 'run_info.json').read_text())['git']
    assert info['dirty'] is True and info['untracked'] == ['slurm-7.out']
    copy = tmp_path / 'copy'
    git(repo, 'worktree', 'add', '-q', str(copy), info['commit'])
    git(copy, 'apply', str(tmp_path / 'uncommitted.patch'))
    assert (
        (copy / 'slurm-7.out').read_bytes() == log
        and (copy / 'a.py').read_bytes() == b'x = "caf\xe9"\n'
    )


def test_a_package_added_to_requirements_gets_its_version_recorded(tmp_path, monkeypatch):
    # a line a user adds for a new model, in each form pip reads; options name no package
    (tmp_path / 'requirements.txt').write_text(
        '  torch>=2.3  # a comment\n\n--find-links /wheels\n-r requirements-dev.txt\n'
        'Pluggy~=1.0 ; python_version >= "3"\niniconfig!=0.1\nnot-installed-tb[x]>=1\n'
        'tqdm @ file:///wheels/tqdm-4.0-py3-none-any.whl\n')
    monkeypatch.setattr(provenance, 'ROOT', str(tmp_path))
    versions = provenance.package_versions()
    installed = {name: importlib.metadata.version(name)
                 for name in ('numpy', 'torch', 'Pluggy', 'iniconfig', 'tqdm')}
    assert versions == {**installed, 'not-installed-tb': None}


def test_packages_the_models_files_import_get_their_versions_recorded(tmp_path, monkeypatch):
    # a model package that wraps a library it imports inside __init__, which requirements.txt
    # does not name (an optional model, or a user who forgot the line)
    (tmp_path / 'requirements.txt').write_text('tqdm\n')
    model = tmp_path / 'model' / 'wrap'
    model.mkdir(parents=True)
    (model / 'wrap_model.py').write_text(
        'import torch.nn as nn\nfrom . import helpers\n\n\nclass Wrap(nn.Module):\n'
        '    def __init__(self, args):\n        import pytest\n        from iniconfig import x\n')
    monkeypatch.setattr(provenance, 'ROOT', str(tmp_path))
    versions = provenance.package_versions(['model/wrap/wrap_model.py'])
    assert versions == {name: importlib.metadata.version(name)
                        for name in ('iniconfig', 'numpy', 'pytest', 'torch', 'tqdm')}


class OutsideModel(torch.nn.Module):
    """A model class defined in a test module: not a project file, so it has no source hash."""


def test_a_model_class_from_outside_the_project_files_is_left_out():
    classes = chosen_classes(make_args(model_type='base'))
    files = source_files((OutsideModel,) + tuple(classes[1:]))
    assert files and not any('test_provenance' in f or f.startswith('model/') for f in files)
