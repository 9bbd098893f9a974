"""The response shape of built-in backbones is built once per spec (``GET /v1/backbones`` is polled)."""

from __future__ import annotations

from app.backbones.catalogue import Catalogue
from app.services import backbones as svc
from tests.kits import REPO


def test_builtin_reads_are_built_once_and_equal_to_a_fresh_build(monkeypatch):
    specs = list(Catalogue(REPO / "models").builtins.values())
    calls = []
    real = svc.spec_to_dict

    def counted(spec):
        calls.append(spec.id)
        return real(spec)

    monkeypatch.setattr(svc, "spec_to_dict", counted)
    monkeypatch.setattr(svc, "_BUILTIN_READS", {})
    first = [svc.to_read(s, builtin=True) for s in specs]
    again = [svc.to_read(s, builtin=True) for s in specs]
    assert sorted(calls) == sorted(s.id for s in specs)  # the second pass built nothing
    assert first == again == [svc._to_read(s, builtin=True) for s in specs]
    first[0]["description"] = "changed by a caller"
    assert svc.to_read(specs[0], builtin=True)["description"] != "changed by a caller"
    calls.clear()
    svc.to_read(specs[0], builtin=False)  # a project's spec is never cached
    svc.to_read(specs[0], builtin=False)
    assert calls == [specs[0].id] * 2
