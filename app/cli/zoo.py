"""``tscout zoo build``: train the built-in source zoo from scratch and write its cards into ``models/``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

zoo_cli = typer.Typer(help="The built-in source zoo (models/).", no_args_is_help=True)
console = Console()


@zoo_cli.command("build")
def build(
    models_dir: Annotated[Path | None, typer.Option(help="Where to write cards + weights (default: TSCOUT_MODELS_DIR)")]
    = None,
    only: Annotated[list[str] | None, typer.Option(help="Build only these sources (arch.tag); repeatable")] = None,
    check: Annotated[bool, typer.Option(help="Fail unless every rebuilt digest equals the committed card's")] = False,
) -> None:
    """Train every zoo source (deterministic, CPU, one thread) and write <name>.safetensors/.toml/.stats.npz."""
    from app.backbones.cards import load_card
    from app.settings import get_settings
    from app.zoo.build import build_source
    from app.zoo.sources import ZOO_SOURCES, zoo_source

    target = Path(models_dir or get_settings().models_dir)
    try:
        sources = [zoo_source(name) for name in only] if only else list(ZOO_SOURCES)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    before = {}
    for s in sources:
        card = target / f"{s.name}.toml"
        if card.is_file():
            before[s.id] = load_card(card).weights_digest
    started = time.perf_counter()
    mismatched = []
    for source in sources:
        built = build_source(source, target)
        old = before.get(source.id)
        same = "new" if old is None else ("same digest" if old == built.weights_sha256 else "DIGEST CHANGED")
        if old is not None and old != built.weights_sha256:
            mismatched.append(source.id)
        console.print(f"{built.id:<32} accuracy {built.accuracy:.3f}  {built.seconds:6.1f}s  "
                      f"{built.weights_sha256[:12]}  {same}")
    console.print(f"built {len(sources)} sources into {target} in {time.perf_counter() - started:.0f}s")
    if check and mismatched:
        console.print(f"[bold red]digests differ from the committed cards:[/] {mismatched}")
        raise typer.Exit(code=1)
