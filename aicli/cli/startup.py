"""Start-up time: the garbage collector around what the `aicli` process imports to run.

Importing creates tens of thousands of objects (modules, classes, functions) that live until
exit. The cyclic collector would walk them several times while they load and once more at exit:
a tenth of a short command's time. So in the `aicli` process (the entry calls `enable`), what
is imported inside `long_lived()` loads with the collector paused and is then frozen (gc.freeze:
left out of every later collection); the collector is back on for everything else. Elsewhere
(tests, a library user) `long_lived()` does nothing.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_enabled = False


def enable() -> None:
    """Called once by the process entry (aicli/__main__.py), never by library code."""
    global _enabled
    _enabled = True


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Imports that stay until exit: no collection while they load, then frozen."""
    if not _enabled or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
