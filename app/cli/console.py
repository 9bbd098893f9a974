"""The consoles every command prints to (tables on stdout, progress and messages on stderr) and the one
way a command fails: a one-line message and exit code 1, never a traceback."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

# tables are wide: outside a terminal (CI logs, pipes) do not squeeze them into 80 columns
console = Console(width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)  # one line, however long
    raise typer.Exit(code=code)
