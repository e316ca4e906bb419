"""scripts/_env.sh installs what the requirements files list and the environment lacks, judged by
scripts/missing_requirements.py with pip's rules (distributions and versions, not import names);
when nothing is missing, no pip runs. Everything here works offline."""
import base64
import hashlib
import os
import shutil
import site
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = os.path.join(ROOT, 'scripts', 'missing_requirements.py')


def check(folder, text, **env):
    """(exit status, output) of missing_requirements.py on a requirements file holding `text`."""
    (folder / 'requirements.txt').write_text(text)
    out = subprocess.run([sys.executable, CHECK, 'requirements.txt'], cwd=folder, text=True,
                         capture_output=True, env={**os.environ, **env})
    return out.returncode, out.stdout + out.stderr


@pytest.mark.parametrize('text', [
    'numpy>=1.0  # a comment after the requirement\n\n# a comment line\n',
    'NumPy>=1.0\nPyTest\n',  # names compare as pip compares them
    'not-installed-tb>=1 ; python_version < "3"\n',  # the marker says: not on this Python
    '--find-links /nowhere\n--no-index\n-i https://example.invalid\nnumpy\n',
    'numpy>=1.\\\n0\n',  # a line continued
    '-r more.txt\n',
])
def test_satisfied_files_print_nothing(tmp_path, text):
    (tmp_path / 'more.txt').write_text('pytest>=7\n')
    assert check(tmp_path, text) == (0, '')


@pytest.mark.parametrize('text, words', [
    ('numpy\nnot-installed-tb>=1\n', 'missing not-installed-tb>=1'),
    ('numpy>=999\n', f'missing numpy>=999 ({__import__("numpy").__version__} installed)'),
    ('-r more.txt\n', 'missing not-installed-tb'),
    # lines only pip can judge: pip install -r runs (correct, if slower)
    ('-e .\n', 'only pip can check requirements.txt:1 `-e .`'),
    ('numpy @ file:///wheels/numpy.whl\n', '`numpy @ file:///wheels/numpy.whl`'),
    ('./local/package\n', '`./local/package`'),
    ('-c constraints.txt\nnumpy\n', '`-c constraints.txt`'),
    ('numpy --hash=sha256:00\n', '`numpy --hash=sha256:00`'),
    ('-r absent.txt\n', 'only pip can check'),
])
def test_missing_or_undecided_lines_are_named_in_one_line(tmp_path, text, words):
    (tmp_path / 'more.txt').write_text('# more\nnot-installed-tb\n')
    status, out = check(tmp_path, text)
    assert status == 1 and words in out and out.count('\n') == 1, out
    assert out.startswith(f'Installing requirements.txt into {sys.prefix} with pip')


@pytest.mark.parametrize('copy', ['packaging', "pip's"])
def test_dependencies_of_installed_packages_count_with_their_extras(tmp_path, copy):
    """An installed package whose own requirement is missing is not satisfied (pip would install
    it), and a dependency under an extra counts only when the extra is asked for. Both copies of
    packaging that the check may use give the same answers."""
    info = tmp_path / 'site' / 'fake_tb-1.0.dist-info'
    info.mkdir(parents=True)
    (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: fake-tb\nVersion: 1.0\n'
                                   'Requires-Dist: numpy>=1\nRequires-Dist: dep-tb>=2\n'
                                   'Requires-Dist: extra-dep-tb ; extra == "x"\n')
    path = [str(tmp_path / 'site')]
    if copy == "pip's":  # a top-level packaging too old to be used: pip's own copy instead
        (tmp_path / 'old' / 'packaging').mkdir(parents=True)
        (tmp_path / 'old' / 'packaging' / '__init__.py').write_text("__version__ = '21.0'\n")
        path.append(str(tmp_path / 'old'))
    pythonpath = os.pathsep.join(path)
    assert check(tmp_path, 'fake-tb\n', PYTHONPATH=pythonpath)[1].endswith(
        '(missing dep-tb>=2 for fake-tb)\n')
    out = check(tmp_path, 'fake-tb[x]==1.0\n', PYTHONPATH=pythonpath)[1]
    assert 'extra-dep-tb for fake-tb' in out and 'dep-tb>=2 for fake-tb' in out


def write_wheel(folder, name, version):
    """A pure-Python wheel written by hand (a zip of the module and its .dist-info: METADATA,
    WHEEL, RECORD), so the test needs no build tools and no network."""
    info = f'{name}-{version}.dist-info'
    files = {f'{name}.py': f'VERSION = {version!r}\n',
             f'{info}/METADATA': f'Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n',
             f'{info}/WHEEL': 'Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n'
                              'Tag: py3-none-any\n'}
    record = ''
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=')
        record += f'{path},sha256={digest.decode()},{len(text.encode())}\n'
    files[f'{info}/RECORD'] = record + f'{info}/RECORD,,\n'
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / f'{name}-{version}-py3-none-any.whl', 'w') as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)


def existing_project(tmp_path):
    """A copy of the project's scripts and requirements with a tiny test suite, and its .venv:
    one that sees this Python's packages (torch, pytest, ruff, ...) through a .pth file, so that
    nothing big is installed, and installs into its own site-packages."""
    project = tmp_path / 'project'
    shutil.copytree(os.path.join(ROOT, 'scripts'), project / 'scripts',
                    ignore=shutil.ignore_patterns('__pycache__'))
    for name in ('requirements.txt', 'requirements-dev.txt', 'pyproject.toml'):
        shutil.copy(os.path.join(ROOT, name), project)
    (project / 'tests').mkdir()
    (project / 'tests' / 'test_new_package.py').write_text(
        'import tb_tiny_model\n\n\ndef test_it_is_there():\n'
        "    assert tb_tiny_model.VERSION == '0.1'\n")
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', project / '.venv'], check=True)
    python = str(project / '.venv' / 'bin' / 'python')
    ask = 'import sysconfig; print(sysconfig.get_path("purelib"))'
    purelib = subprocess.run([python, '-c', ask], capture_output=True, text=True,
                             check=True).stdout.strip()
    with open(os.path.join(purelib, 'this_python.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
    return project, python


@pytest.mark.slow
def test_a_package_added_to_requirements_is_installed_by_test_sh(tmp_path):
    project, python = existing_project(tmp_path)
    write_wheel(tmp_path / 'wheels', 'tb_tiny_model', '0.1')
    with open(project / 'requirements.txt', 'a') as f:
        f.write(f'--find-links {tmp_path / "wheels"}\n'
                'tb-tiny-model>=0.1  # the new model needs it\n')
    # no index at all: pip finds the wheel in --find-links or fails
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'CONDA_PREFIX')}
    env.update(PIP_NO_INDEX='1', PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_INPUT='1')

    def test_sh():
        out = subprocess.run(['bash', project / 'scripts' / 'test.sh', '-p', 'no:cacheprovider'],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def importable():
        return subprocess.run([python, '-c', 'import tb_tiny_model'], capture_output=True,
                              cwd=tmp_path).returncode == 0

    assert not importable()
    first = test_sh()
    installing = [line for line in first.splitlines() if line.startswith('Installing requirements')]
    assert installing == [f'Installing requirements.txt requirements-dev.txt into '
                          f'{project / ".venv"} with pip (missing tb-tiny-model>=0.1)'], first
    assert 'Successfully installed tb-tiny-model-0.1' in first and '1 passed' in first
    assert importable()
    # now nothing is missing: no pip at all (pip says "Requirement already satisfied")
    second = test_sh()
    assert 'Installing' not in second and 'Requirement already' not in second, second
    assert '1 passed' in second
