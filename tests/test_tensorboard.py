"""TensorBoard shows the run, not only its curves: HPARAMS (the flags and the metrics, one row a
run, also once resumed) and TEXT (args.json, the command, the commit), read back from the event
files raw and as TensorBoard loads them."""
import glob
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import metadata

import train
from tests.conftest import run_name
from utils.run_summary import METRICS


def hparams_summaries(run):
    """[(tag, content)] of every hparams plugin summary in the run folder's event files, raw:
    before TensorBoard drops anything by purge_step."""
    found = []
    for path in sorted(glob.glob(str(run / 'events.out.tfevents.*'))):
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                plugin = value.metadata.plugin_data
                if plugin.plugin_name == metadata.PLUGIN_NAME:
                    found.append((value.tag, plugin.content))
    return found


def loaded(run):
    """The run folder as TensorBoard loads it (every event file, purge_step applied)."""
    acc = EventAccumulator(str(run), size_guidance={'tensors': 0, 'scalars': 0})
    acc.Reload()
    return acc


def texts(acc, tag):
    """[(step, markdown)] of a TEXT tag (SummaryWriter.add_text adds `/text_summary`)."""
    events = acc.Tensors(f'{tag}/text_summary')
    return [(e.step, e.tensor_proto.string_val[0].decode()) for e in events]


def session_start(run):
    """The one SessionStartInfo of the run (asserts there is exactly one)."""
    starts = [c for tag, c in hparams_summaries(run) if tag == metadata.SESSION_START_INFO_TAG]
    assert len(starts) == 1, f'{len(starts)} hparams session starts in {run}'
    return metadata.parse_session_start_info_plugin_data(starts[0])


def test_hparams_row_text_and_metrics(train_argv, tmp_path):
    train.main(train_argv + ['--lr', '0.02'])
    run = tmp_path / 'checkpoints' / run_name('seg')
    args = json.loads((run / 'args.json').read_text())
    tags = [tag for tag, _ in hparams_summaries(run)]
    # no experiment summary: TensorBoard then puts first the flags that differ between runs
    assert tags == [metadata.SESSION_START_INFO_TAG]
    flags = session_start(run).hparams
    assert flags['lr'].number_value == pytest.approx(0.02)
    assert flags['model_type'].string_value == args['model_type'] == 'base'
    assert flags['monitor'].string_value == 'val/mIoU'
    assert set(flags) == set(args)  # every flag is a column
    for name, value in args.items():  # None and lists as strings
        if value is None:
            assert flags[name].string_value == 'none', name
        elif isinstance(value, list):
            assert flags[name].string_value == ' '.join(map(str, value)), name

    acc = loaded(run)
    assert set(acc.PluginTagToContent(metadata.PLUGIN_NAME)) == set(tags)
    for tag in METRICS:
        assert [e.step for e in acc.Scalars(tag)] == [1, 2], tag
    last = {tag: acc.Scalars(tag)[-1].value for tag in METRICS}
    miou = [e.value for e in acc.Scalars('val/mIoU')]
    assert last['hparams/best_monitor'] == pytest.approx(max(miou))
    assert last['hparams/best_epoch'] == 1 + miou.index(max(miou))
    assert last['hparams/last_monitor'] == pytest.approx(miou[-1])
    assert last['hparams/last_val_loss'] == pytest.approx(acc.Scalars('val/loss')[-1].value)

    [(step, text)] = texts(acc, 'run/args.json')
    assert step == 0 and text == f"```json\n{(run / 'args.json').read_text().rstrip()}\n```"
    [(step, text)] = texts(acc, 'run/command')
    assert step == 0 and (run / 'command.txt').read_text().strip() in text
    commit = json.loads((run / 'run_info.json').read_text())['git']['commit']
    [(step, text)] = texts(acc, 'run/git')
    assert step == 0 and f'"commit": {json.dumps(commit)}' in text


def test_a_resumed_run_keeps_one_hparams_row(train_argv, tmp_path):
    argv = list(train_argv)
    argv[argv.index('--epochs') + 1] = '1'
    train.main(argv)
    run = tmp_path / 'checkpoints' / run_name('seg')
    train.main(['--resume', str(run), '--epochs', '2'])
    assert len(glob.glob(str(run / 'events.out.tfevents.*'))) == 2  # one per process
    assert session_start(run).hparams['epochs'].number_value == 1  # the row of the first start
    acc = loaded(run)
    assert metadata.SESSION_START_INFO_TAG in acc.PluginTagToContent(metadata.PLUGIN_NAME)
    for tag in METRICS:
        assert [e.step for e in acc.Scalars(tag)] == [1, 2], tag
    # TEXT: the start's, and the resumed one's at its first epoch (purge_step), which holds the
    # new --epochs and both commands
    commands = texts(acc, 'run/command')
    assert [step for step, _ in commands] == [0, 2]
    assert commands[1][1].count('train.py') == 2 and commands[0][1].count('train.py') == 1
    assert [json.loads(t.split('\n', 1)[1].rsplit('\n', 1)[0])['epochs']
            for _, t in texts(acc, 'run/args.json')] == [1, 2]
