"""``import milguard`` registers milguard's passes with coremltools without importing coremltools.

Importing coremltools takes seconds (it imports torch); ``milguard --help`` and the light modules
(``milguard.errors``, ``milguard.fp16``, the command line's parser) must not pay that. A pass
registry only exists once coremltools is imported, so "registered on import" means: registered
before anyone can read the registry.

- coremltools already imported: the passes (:mod:`milguard.registered`) are registered at once.
- otherwise a finder at the front of ``sys.meta_path`` watches the import of ``coremltools`` and
  registers them as soon as it completes. When milguard's own code is what imports coremltools,
  some milguard modules are still half-initialised at that moment (and the pass modules may need
  them), so the registration waits until the outermost milguard module being executed finishes.

The finder removes itself once the passes are registered.
"""
from __future__ import annotations

import sys
import threading
from importlib import import_module
from importlib.machinery import ModuleSpec
from typing import Any, Sequence

PASSES = "milguard.registered"      # importing it registers every milguard::* pass
TRIGGER = "coremltools"


def register_passes() -> None:
    """Register milguard's passes now when coremltools is imported, else right after it is."""
    if PASSES in sys.modules:
        return
    if TRIGGER in sys.modules:
        import_module(PASSES)
        return
    if not any(isinstance(f, _Watcher) for f in sys.meta_path):
        sys.meta_path.insert(0, _Watcher())


class _Watcher:
    """Finds ``coremltools`` and ``milguard.*`` through the other finders and wraps their loaders,
    counting the milguard modules being executed; registers once coremltools is in and none is."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0             # milguard modules whose code is being executed
        self._due = False             # coremltools is imported, the passes are not registered yet

    def find_spec(self, name: str, path: Sequence[str] | None, target: Any = None) -> ModuleSpec | None:
        if name != TRIGGER and not name.startswith("milguard."):
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _WatchedLoader(spec.loader, self, is_trigger=name == TRIGGER)
                return spec
        return None

    def started(self, is_trigger: bool) -> None:
        if not is_trigger:
            with self._lock:
                self._running += 1

    def finished(self, is_trigger: bool, ok: bool) -> None:
        with self._lock:
            if is_trigger:
                self._due = self._due or ok
            else:
                self._running -= 1
            ready = self._due and self._running == 0
        if ready:
            self._register(raise_errors=ok)

    def _register(self, raise_errors: bool) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        try:
            import_module(PASSES)
        except Exception:
            if raise_errors:
                raise
            sys.meta_path.insert(0, self)     # an import is failing already: try again on the next one


class _WatchedLoader:
    """A loader that tells the watcher when a module's code starts and ends; everything else
    (``get_code``, ``get_resource_reader``, ...) is the wrapped loader's."""

    def __init__(self, loader: Any, watcher: _Watcher, is_trigger: bool) -> None:
        self._loader, self._watcher, self._is_trigger = loader, watcher, is_trigger

    def create_module(self, spec: ModuleSpec) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._watcher.started(self._is_trigger)
        try:
            self._loader.exec_module(module)
        except BaseException:
            self._watcher.finished(self._is_trigger, ok=False)
            raise
        self._watcher.finished(self._is_trigger, ok=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
