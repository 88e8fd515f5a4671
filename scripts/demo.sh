#!/usr/bin/env bash
# Sets up .venv (pinned) and runs milguard's main job on the bundled example model. The packages are
# saved under out/demo/ of the current folder, so the commands the demo prints work from here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
exec "$PY" -m milguard.demo "$@"
