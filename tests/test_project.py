"""The parts of the template that are not Python: scripts, PyCharm and VS Code configurations,
README, requirements."""
import glob
import importlib.util
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest
from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize('script', sorted(glob.glob(os.path.join(ROOT, 'scripts', '*.sh')) + [
    os.path.join(ROOT, '.ci', 'run')]))
def test_shell_scripts_parse(script):
    subprocess.run(['bash', '-n', script], check=True)


def test_pycharm_run_configurations_point_at_real_files():
    configs = glob.glob(os.path.join(ROOT, '.run', '*.run.xml'))
    # the shipped three must be there; users' own copies may sit beside them and are checked too
    names = {os.path.basename(c) for c in configs}
    assert {'train.run.xml', 'eval.run.xml', 'tests.run.xml'} <= names, names
    for path in configs:
        options = {o.get('name'): o.get('value') for o in ET.parse(path).getroot().iter('option')}
        assert options['WORKING_DIRECTORY'] == '$PROJECT_DIR$', path
        target = options.get('SCRIPT_NAME') or options['_new_target'].strip('"')
        assert os.path.exists(target.replace('$PROJECT_DIR$', ROOT)), (path, target)


def test_vscode_configurations_point_at_real_files():
    with open(os.path.join(ROOT, '.vscode', 'settings.json')) as f:
        settings = json.load(f)
    assert settings['python.testing.pytestEnabled'] is True
    assert settings['python.testing.pytestArgs'] == ['tests']
    with open(os.path.join(ROOT, '.vscode', 'launch.json')) as f:
        configs = json.load(f)['configurations']
    assert {'train', 'eval', 'predict', 'tests'} <= {c['name'] for c in configs}
    for c in configs:
        assert c['cwd'] == '${workspaceFolder}', c['name']
        if 'program' in c:
            program = c['program'].replace('${workspaceFolder}', ROOT)
            assert os.path.exists(program), (c['name'], program)
        else:
            assert importlib.util.find_spec(c['module']) is not None, (c['name'], c['module'])


def test_readme_describes_every_top_level_entry():
    readme = open(os.path.join(ROOT, 'README.md')).read()
    for entry in (
        'checkpoints/',
        'data/',
        'model/',
        'utils/',
        'scripts/',
        'tests/',
        '.run/',
        '.vscode/',
        '.ci/run',
        'options.py',
        'train.py',
        'eval.py',
        'loss.py',
        'metrics.py',
        'requirements.txt',
    ):
        assert entry in readme, entry
    assert 'bash scripts/demo.sh' in readme and 'bash scripts/test.sh' in readme


def test_requirements_admit_the_tested_torch_pair():
    reqs = {}
    for line in open(os.path.join(ROOT, 'requirements.txt')):
        line = line.split('#', 1)[0].strip()
        if line:
            r = Requirement(line)
            reqs[r.name] = r.specifier
    assert reqs['torch'].contains('2.14.1') and reqs['torchvision'].contains('0.29.1')
    assert {'tensorboard', 'numpy', 'pillow', 'opencv-python-headless', 'tqdm'} <= set(reqs)
