"""ListDataset: samples named by a list file, one `image_path label_path` line each (blank lines and
`#` comments are skipped); relative paths resolve against the list file's folder. --train_list
and --val_list name the files; the demo's are made on first use."""
import os

from data.list_file import check_file, list_lines, resolve
from data.make_shapes import ensure_demo_data
from data.seg_dataset import SegDataset

LINE = '`image_path label_path`'  # what a line of this dataset's list holds, as messages show it


def read_list(list_path):
    """Returns [(image_path, label_path, where)] with paths made absolute, `where` the line as
    `list:number`."""
    return [(resolve(list_path, image), resolve(list_path, label), f'{list_path}:{n}')
            for n, (image, label) in list_lines(list_path, LINE)]


class ListDataset(SegDataset):
    @staticmethod
    def find(args, is_train):
        list_path = args.train_list if is_train else args.val_list
        ensure_demo_data(list_path)
        return read_list(list_path)

    @staticmethod
    def split_name(args):
        """<list folder>_<list name>, e.g. shapes_val."""
        folder = os.path.basename(os.path.dirname(os.path.abspath(args.val_list)))
        return f'{folder}_{os.path.splitext(os.path.basename(args.val_list))[0]}'

    def __init__(self, args, is_train):
        super().__init__(args, is_train)
        self.list_path = args.train_list if is_train else args.val_list

    def load(self, index):
        img_path, label_path, where = self.samples[index]
        for path in (img_path, label_path):  # both, before either is decoded
            check_file(path, where, LINE)
        return super().load(index)
