"""The builders every test shares, one module per subject (tests import kits, never other test modules).

``backbones``  tiny real backbones of every family          ``datasets``  target archives and upload helpers
``probes``     toy adapters and tasks with known answers     ``rankings``  a toy catalogue, targets, job helpers
``handlers``   job handlers and units for the executor tests ``jobs``      job rows and their status
``databases``  the PostgreSQL test server and table wiping   ``servers``   the real app under uvicorn
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
