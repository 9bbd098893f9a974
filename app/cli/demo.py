"""``tscout demo`` (``make demo``): rank the whole built-in zoo on a bundled few-shot target, with probes,
against the embedded defaults, and print the table.

The bundled target, ``targets/gratings_4.zip`` under the models directory (``TSCOUT_MODELS_DIR``), holds 60 images per class of a 4-way grating
orientation task (bins offset by 22.5°, 3–7 cycles) — the benchmark's ``gratings_4`` domain with a seed no
zoo source used. Like the benchmark's targets it is few-shot: the demo's server keeps a quarter of it (15
images per class) for training and holds out the rest to measure the probes. The transfer benchmark
measured real negative transfer on this domain (``resnet_small.noise`` and ``cnn_small.digits`` fine-tune
below scratch), so the demo shows the verdict doing its job. The archive is rebuilt
bit for bit by :func:`write_demo_target` (``tscout demo --rebuild-target``).
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

DEMO_TARGET = Path("targets/gratings_4.zip")  # relative to the models directory
PER_CLASS = 60
VAL_FRACTION = 0.75  # few-shot: 15 training images per class, the rest held out
SEED = 4242


def demo_target_bytes() -> bytes:
    """The bundled target's archive: deterministic (fixed seed, fixed member timestamps)."""
    from app.zoo.domains import generate
    from app.zoo.export import class_folder_zip

    images, labels = generate("gratings", 4 * PER_CLASS, SEED, orientations=4, offset=22.5, cycles=(3.0, 7.0))
    return class_folder_zip(images, labels, "gratings_4", ["0deg", "45deg", "90deg", "135deg"])


def demo_target_path(models_dir: Path | str) -> Path:
    return Path(models_dir) / DEMO_TARGET


def write_demo_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(demo_target_bytes())
    return path


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo(
    seeds: Annotated[int, typer.Option(help="Paired probe seeds")] = 5,
    steps: Annotated[int, typer.Option(help="Probe optimisation steps per run")] = 50,
    top_k: Annotated[int, typer.Option(help="Probe the k best candidates (plus suspicious ones)")] = 2,
    suspicious: Annotated[int, typer.Option(help="Also probe up to this many flagged sources")] = 6,
    rebuild_target: Annotated[bool, typer.Option("--rebuild-target", help="Rewrite the bundled target")] = False,
) -> None:
    """Rank every built-in zoo backbone on the bundled gratings target, with probes, and print the table."""
    import uvicorn

    from app.cli.console import err
    from app.cli.rank import follow, print_table
    from app.client import Client
    from app.main import create_app
    from app.settings import get_settings

    settings = get_settings().model_copy(update={"val_fraction": VAL_FRACTION})
    target = demo_target_path(settings.models_dir)
    if rebuild_target or not target.exists():
        write_demo_target(target)
        err.print(f"wrote {target}")
    if settings.is_sqlite:  # like `make serve`: the embedded database is upgraded in place
        from app.db import migrate

        migrate.upgrade(settings.database_url)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise typer.Exit(code=1)
        time.sleep(0.05)
    try:
        with Client(f"http://127.0.0.1:{port}") as client:
            dataset = client.upload_dataset(target)
            job = client.rank(dataset.id, backbones={"family": "zoo"}, layers="auto",
                              probe={"top_k": top_k, "include_suspicious": True, "max_suspicious": suspicious,
                                     "seeds": seeds, "budget_steps": steps, "lr_grid": [0.003],
                                     "arms": ["finetune", "scratch", "linear"]})
            err.print(f"ranking {job.id}: every zoo backbone on {target.name}")
            result = follow(client, job.id, quiet=False)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
    print_table(result)
    verdicts = [r.verdict.verdict for r in result.table if r.verdict]
    err.print(f"demo finished in {time.perf_counter() - started:.0f} s; verdicts: "
              + ", ".join(f"{v} × {verdicts.count(v)}" for v in sorted(set(verdicts))))
    if result.status.value != "SUCCEEDED":
        raise typer.Exit(code=2)
