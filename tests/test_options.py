"""Flags, run folders and result folders: defaults that run, args that round-trip, runs that never
overwrite."""
import argparse
import json
import os

import pytest
import torch

from data.data_entry import type2data
from loss import type2loss
from model.model_entry import select_model, type2model
from options import prepare_test_args, prepare_train_args
from tests.conftest import make_args
from utils.errors import ConfigError
from utils.run_dir import read_latest, write_latest


def test_defaults_are_registry_keys():
    args = make_args()
    assert args.model_type in type2model and args.data_type in type2data and args.loss in type2loss
    assert len(args.class_names) == args.num_classes
    assert make_args(is_train=False).batch_size == 1


def test_args_json_round_trips(train_argv):
    args = prepare_train_args(train_argv + ['--class_names', 'bg', 'c', 'r', 't'])
    with open(os.path.join(args.model_dir, 'args.json')) as f:
        assert argparse.Namespace(**json.load(f)) == args


def test_run_folders_are_numbered(train_argv, tmp_path):
    dirs = [prepare_train_args(train_argv + ['--save_prefix', 'x']).model_dir for _ in range(3)]
    ck = tmp_path / 'checkpoints'
    assert dirs == [str(ck / 'base_x'), str(ck / 'base_x_2'), str(ck / 'base_x_3')]
    command = (ck / 'base_x_2' / 'command.txt').read_text()
    assert (
        command.startswith(f'cd {os.getcwd()} && ')
        and 'train.py' in command
        and '--save_prefix x' in command
    )
    assert 'Run folder: ' in (ck / 'base_x_2' / 'train.log').read_text()


@pytest.mark.parametrize('inside', [True, False])
def test_latest_names_runs_inside_and_outside_checkpoints_dir(tmp_path, inside):
    ck = tmp_path / 'checkpoints'
    ck.mkdir()
    run = ck / 'base_a' if inside else tmp_path / 'elsewhere' / 'run'
    write_latest(str(ck), str(run))
    assert os.path.abspath(read_latest(str(ck))) == str(run)


@pytest.mark.parametrize('flags, message', [
    (['--batch_size', '0'], '--batch_size must be positive'),
    (['--lr', '-1'], '--lr must be positive'),
    (['--epochs', '0'], '--epochs must be positive'),
    (['--save_freq', '0'], '--save_freq must be positive'),
    (['--print_freq', '0'], '--print_freq must be positive'),
    (['--num_workers', '-1'], '--num_workers must be 0 or more'),
    (
        ['--num_classes', '3', '--class_names', 'a', 'b'],
        '--class_names has 2 names for --num_classes 3',
    ),
    (['--save_prefix', '../up'], '--save_prefix'),
    (['--gpus', '7'], 'GPU 7 is not there'),
    (['--monitor', 'val/loss'], 'add --monitor_mode min'),
])
def test_bad_flags_fail_before_any_folder(train_argv, tmp_path, flags, message):
    if flags[0] == '--gpus' and torch.cuda.device_count() > 7:
        pytest.skip('this machine has a GPU 7')
    with pytest.raises(ConfigError, match=message):
        prepare_train_args(train_argv + flags)
    assert not (tmp_path / 'checkpoints').exists()


def test_unknown_registry_name_is_refused_with_valid_names(train_argv, tmp_path, capsys):
    with pytest.raises(SystemExit):
        prepare_train_args(train_argv + ['--model_type', 'nope'])
    assert ', '.join(repr(name) for name in type2model) in capsys.readouterr().err
    assert not (tmp_path / 'checkpoints').exists()


def save_fake_checkpoint(path, **arg_overrides):
    args = make_args(**arg_overrides)
    torch.save({
        'model': select_model(args).state_dict(),
        'epoch': 1,
        'args': vars(args),
        'metrics': {},
    }, path)


def test_test_args_come_from_checkpoint_unless_given(tmp_path, shapes):
    run = tmp_path / 'checkpoints' / 'better_exp'
    run.mkdir(parents=True)
    save_fake_checkpoint(
        run / 'best.pth',
        model_type='better',
        num_classes=3,
        class_names=['a', 'b', 'c'],
        val_list=str(shapes / 'val.txt'),
        ignore_index=7,
    )
    (tmp_path / 'checkpoints' / 'latest').write_text('better_exp\n')
    argv = ['--checkpoints_dir', str(tmp_path / 'checkpoints'), '--save_prefix', 'try']
    args, ckpt = prepare_test_args(argv)
    assert args.load_model_path == str(run / 'best.pth')  # the newest run's best checkpoint
    # read once: the weights to score come with the args
    assert ckpt['args']['model_type'] == 'better'
    assert (args.model_type, args.num_classes, args.class_names) == ('better', 3, ['a', 'b', 'c'])
    assert (args.val_list, args.ignore_index, args.data_type) == (
        str(shapes / 'val.txt'), 7, 'list'
    )
    assert args.result_dir == str(run / 'best' / 'shapes_val_try')
    assert json.load(open(os.path.join(args.result_dir, 'args.json')))['model_type'] == 'better'
    command = open(os.path.join(args.result_dir, 'command.txt')).read()
    assert f'--load_model_path {run / "best.pth"}' in command
    # Flags given on the command line win; an evaluation never reuses an earlier one's folder.
    again, _ = prepare_test_args(
        argv + ['--model_type', 'base', '--ignore_index', '255', '--load_not_strict']
    )
    assert (again.model_type, again.ignore_index) == ('base', 255)
    assert again.result_dir == str(run / 'best' / 'shapes_val_try_2')


def test_bad_eval_flags_fail_before_any_folder(tmp_path, shapes):
    torch.save(select_model(make_args()).state_dict(), tmp_path / 'w.pth')
    with pytest.raises(ConfigError, match='--viz_freq must be positive'):
        prepare_test_args(['--load_model_path', str(tmp_path / 'w.pth'), '--viz_freq', '0'])
    assert os.listdir(tmp_path) == ['w.pth']


def test_bare_state_dict_takes_the_flag_defaults(tmp_path, shapes):
    torch.save(select_model(make_args()).state_dict(), tmp_path / 'bare.pth')
    args, _ = prepare_test_args(['--load_model_path', str(tmp_path / 'bare.pth'), '--val_list',
                                 str(shapes / 'val.txt')])
    assert (args.model_type, args.num_classes, args.ignore_index) == ('base', 4, 255)
    assert args.result_dir == str(tmp_path / 'bare' / 'shapes_val_exp')


def test_eval_without_any_run_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match='train first'):
        prepare_test_args(['--checkpoints_dir', str(tmp_path / 'empty')])
