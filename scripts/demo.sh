#!/usr/bin/env bash
# Sets up .venv (pinned) and runs milguard's main job on the bundled example model.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
cd "$ROOT"
exec "$PY" -m milguard.demo "$@"
