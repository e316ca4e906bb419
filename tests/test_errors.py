"""User mistakes reach the console as one line, also when a DataLoader worker process found them."""
import pytest
from torch.utils.data import DataLoader, Dataset

from utils.errors import ConfigError, run_cli, user_message


class Broken(Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        raise ConfigError('list.txt:3: cannot read a.png')


@pytest.mark.parametrize('num_workers', [0, 1])
def test_message_of_error_raised_in_loader(num_workers):
    with pytest.raises(ConfigError) as e:
        next(iter(DataLoader(Broken(), num_workers=num_workers)))
    assert user_message(e.value) == 'list.txt:3: cannot read a.png'


def test_run_cli_prints_one_line_and_exits_1(capsys):
    def main():
        raise ConfigError('--lr must be positive')

    with pytest.raises(SystemExit) as e:
        run_cli(main)
    assert e.value.code == 1
    assert capsys.readouterr().err == 'error: --lr must be positive\n'


def test_run_cli_also_writes_errors_into_the_folders_log_file(tmp_path, capsys):
    from utils.run_dir import close_logging, setup_logging

    def mistake():
        raise ConfigError('--lr must be positive')

    setup_logging(str(tmp_path / 'train.log'))
    try:
        with pytest.raises(SystemExit):
            run_cli(mistake)
        # a bug keeps its traceback on the console, and in the file
        with pytest.raises(ZeroDivisionError):
            run_cli(lambda: 1 / 0)
    finally:
        close_logging()
    text = (tmp_path / 'train.log').read_text()
    assert (
        'error: --lr must be positive' in text
        and 'Traceback' in text
        and 'ZeroDivisionError' in text
    )
    assert capsys.readouterr().err.count('error: --lr must be positive') == 1
