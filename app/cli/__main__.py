"""``python -m app.cli …`` runs ``tscout …``."""

from app.cli import main

main()
