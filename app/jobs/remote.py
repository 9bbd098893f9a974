"""Units of work in another process: the settings a worker process rebuilds its :class:`Runtime` from, and
the body every such call runs — shared by the Ray executor's tasks and the local executor's unit processes.

A unit is a module-level function ``fn(runtime, *args)`` (pickled by reference); the worker keeps one
Runtime per settings, the last few of them, because building one per unit would cost more than most units.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from app.settings import Settings

#: Runtimes a worker process keeps (one per settings it was sent; older ones are closed)
WORKER_RUNTIMES = 4
_RUNTIMES: OrderedDict[str, Runtime] = OrderedDict()
_LOCK = threading.Lock()


def portable_settings(settings: Settings) -> dict[str, Any]:
    """Settings as JSON, with relative local paths made absolute (workers may run in other folders)."""
    data = settings.model_dump(mode="json")
    url = settings.database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        data["database_url"] = f"sqlite:///{Path(url.removeprefix('sqlite:///')).resolve()}"
    if "://" not in settings.storage_url:
        data["storage_url"] = str(Path(settings.storage_url).resolve())
    for key in ("models_dir", "hub_cache_dir"):
        data[key] = str(Path(data[key]).resolve())
    return data


def worker_runtime(settings_json: dict[str, Any]) -> Runtime:
    """This process's Runtime for ``settings_json`` (built on first use, the least recent closed past
    :data:`WORKER_RUNTIMES`)."""
    key = repr(sorted(settings_json.items()))
    with _LOCK:
        runtime = _RUNTIMES.get(key)
        if runtime is not None:
            _RUNTIMES.move_to_end(key)
            return runtime
    runtime = Runtime.from_settings(Settings(**settings_json))
    with _LOCK:
        _RUNTIMES[key] = runtime
        while len(_RUNTIMES) > WORKER_RUNTIMES:
            _RUNTIMES.popitem(last=False)[1].close()
    return runtime


def execute_unit(settings_json: dict[str, Any], unit: Any, args: tuple[Any, ...]) -> Any:
    """Body of every out-of-process unit: ``unit(runtime, *args)`` on this process's cached runtime."""
    return unit(worker_runtime(settings_json), *args)
