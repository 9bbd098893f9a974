"""``tscout ranker``: the fitted default ranking — ``show`` the one jobs use now, ``fit`` a new version from
the benchmark's CSVs plus a project's own probe measurements (written only when it is not worse)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import console, err, fail
from app.settings import get_settings

ranker_cli = typer.Typer(help="The fitted default ranking.", no_args_is_help=True)


@ranker_cli.command("show")
def show(
    task_type: Annotated[str, typer.Option("--task-type", help="Task type")] = "classification",
) -> None:
    """Print the default ranking a job with aggregation 'default' uses now."""
    import json

    from app.services.rankers import ranker_block

    block = ranker_block(get_settings(), task_type)
    if block is None:
        fail(f"no fitted default ranking for {task_type!r}")
    console.print_json(json.dumps(block))


@ranker_cli.command("fit")
def fit_cmd(
    bench_dir: Annotated[Path, typer.Option("--bench-dir", help="The benchmark's CSVs (bench/transfer)")]
    = Path("bench/transfer"),
    project: Annotated[str | None, typer.Option("--project", help="Also learn from this project's probe runs")]
    = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Fit and compare; write nothing")] = False,
) -> None:
    """Refit the default ranking; print leave-one-target-out τ before and after; write a new version to
    TSCOUT_RANKERS_DIR only when it is not worse."""
    from sqlalchemy import select

    from app.db.session import make_engine, make_sessionmaker
    from app.db.tables import Project
    from app.services.rankers import refit

    settings = get_settings()
    if not bench_dir.is_dir():
        fail(f"--bench-dir {bench_dir} is not a directory")
    engine = make_engine(settings.database_url) if project else None
    try:
        session = make_sessionmaker(engine)() if engine is not None else None
        try:
            project_id = None
            if session is not None:
                project_id = session.scalar(select(Project.id).where(Project.name == project))
                if project_id is None:
                    fail(f"--project {project!r}: no such project")
            err.print("fitting (leave-one-target-out, every fold refits the family, weights and layer rule)…")
            try:
                out = refit(settings, bench_dir, session=session, project_id=project_id, write=not dry_run)
            except (FileNotFoundError, ValueError) as exc:
                fail(str(exc))
        finally:
            if session is not None:
                session.close()
    finally:
        if engine is not None:
            engine.dispose()
    for note in out["notes"]:
        err.print(f"note: {note}")
    console.print(f"targets: {len(out['targets'])}")
    console.print(f"{'target':<40} {'before τ':>9} {'after τ (LOTO)':>15}")
    for t in out["targets"]:
        console.print(f"{t:<40} {out['before_per_target'][t]:>9.3f} {out['after_per_target'][t]:>15.3f}")
    new = out["new"]
    console.print(f"{'mean':<40} {out['before']:>9.3f} {out['after']:>15.3f}")
    console.print(f"current: {out['current']}; refit: {new.combination} family, layer rule {new.layer_rule}, "
                  "weights " + ", ".join(f"{m} {w:.2f}" for m, w in sorted(new.weights.items(), key=lambda kv: -kv[1])))
    if out["written"] is not None:
        console.print(f"wrote {new.name}: {out['written']}")
    elif dry_run:
        console.print("dry run: nothing written")
    else:
        console.print(f"not written: the refit's τ {out['after']:.3f} is below the current default's "
                      f"{out['before']:.3f}")
