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
