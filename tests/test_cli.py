"""The command lines as a user types them: a mistake is one clear line and a non-zero exit, never a
traceback."""
import os
import subprocess
import sys

from model.model_entry import type2model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*argv, cwd):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, argv[0]), *argv[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_unknown_model_type_exits_with_valid_names_and_no_folder(tmp_path):
    p = run('train.py', '--model_type', 'nope', cwd=tmp_path)
    assert p.returncode == 2
    assert (
        "invalid choice: 'nope'" in p.stderr
        and ', '.join(repr(name) for name in type2model) in p.stderr
    )
    assert os.listdir(tmp_path) == []


def test_eval_with_no_run_is_one_line_error(tmp_path):
    p = run('eval.py', cwd=tmp_path)
    assert p.returncode == 1
    assert p.stderr.startswith('error: no run found') and 'Traceback' not in p.stderr
    assert os.listdir(tmp_path) == []


def test_help_lists_the_article_flags(tmp_path):
    out = run('train.py', '-h', cwd=tmp_path).stdout
    for flag in (
        '--model_type',
        '--data_type',
        '--save_prefix',
        '--load_model_path',
        '--load_not_strict',
        '--val_list',
        '--gpus',
        '--lr',
        '--momentum',
        '--beta',
        '--weight_decay',
        '--train_list',
        '--batch_size',
        '--epochs',
        '--model_dir',
    ):
        assert flag in out, flag
