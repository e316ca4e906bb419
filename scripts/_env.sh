# Sourced by demo.sh and test.sh: moves to the project folder and picks the Python to use.
# The active virtual or conda environment if there is one; otherwise the project's own .venv, made on first use
# (system Pythons often refuse pip installs). install_missing installs a requirements file only when needed.
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

install_missing() {  # install_missing <requirements file> <module to import>...
  local req=$1
  shift
  if ! "$PY" -c "import $(IFS=,; echo "$*")" 2>/dev/null; then
    echo "Installing $req into $("$PY" -c 'import sys; print(sys.prefix)') (once; torch's CUDA build is about 6 GB)"
    "$PY" -m pip install -r "$req"
  fi
}
