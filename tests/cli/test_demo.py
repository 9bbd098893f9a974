"""The bundled demo target is reproducible from its generator."""

from __future__ import annotations

import zipfile

from app.cli.demo import PER_CLASS, demo_target_bytes, demo_target_path
from tests.kits import REPO


def test_bundled_target_is_rebuilt_bit_for_bit():
    committed = demo_target_path(REPO / "models").read_bytes()
    assert demo_target_bytes() == committed
    with zipfile.ZipFile(demo_target_path(REPO / "models")) as zf:
        names = zf.namelist()
    assert len(names) == 4 * PER_CLASS
    assert len({n.split("/")[1] for n in names}) == 4
