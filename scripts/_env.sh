# Sourced by demo.sh and test.sh: moves to the project folder and picks the Python to use.
# The active virtual or conda environment if there is one; otherwise the project's own .venv, made on first use
# (system Pythons often refuse pip installs). install_missing pip-installs requirements files only when needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ -n "${VIRTUAL_ENV:-}" ] || [ -n "${CONDA_PREFIX:-}" ]; then
  PY=python
else
  if [ ! -x .venv/bin/python ]; then
    echo "No active virtual or conda environment: creating .venv in the project"
    python3 -m venv .venv
  fi
  PY=.venv/bin/python
fi

install_missing() {  # install_missing <requirements file>...
  # missing_requirements.py checks the installed distributions against the files by pip's rules in
  # a fraction of a second, offline, and prints one line when something is missing: only then pip
  # (which takes seconds, and may need the network, even when there is nothing to do)
  if ! "$PY" scripts/missing_requirements.py "$@"; then
    local files=() req
    for req in "$@"; do files+=(-r "$req"); done
    "$PY" -m pip install "${files[@]}"
  fi
}
