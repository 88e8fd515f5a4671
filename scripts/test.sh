#!/usr/bin/env bash
# Sets up .venv (pinned) and runs the test suite. Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
cd "$ROOT"
exec "$PY" -m pytest "$@"
