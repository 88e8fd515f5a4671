"""``python -m milguard audit MODEL`` / ``python -m milguard fix MODEL -o OUT`` (see milguard.cli)."""
from __future__ import annotations

from .cli import main

raise SystemExit(main())
