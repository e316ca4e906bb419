#!/usr/bin/env bash
# The test suite: lint with ruff, then pytest (CPU only, a few minutes). Extra flags go to pytest.
source "$(dirname "$0")/_env.sh"
install_missing requirements.txt requirements-dev.txt

"$PY" -m ruff check .
status=0
"$PY" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests; that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
