"""The client's extension call is validated before it is sent and targets the documented endpoint."""

from __future__ import annotations

import uuid

import pytest

from app.client import _core


def test_extend_call_posts_the_validated_extension():
    job = uuid.uuid4()
    call = _core.extend_call(job, max_seeds=12, candidates=["zoo:cnn_small.digits"], time_budget_seconds=None,
                             idempotency_key="k-1")
    assert call.method == "POST" and call.path == f"/v1/rankings/{job}/probes"
    assert call.kwargs["json"] == {"max_seeds": 12, "candidates": ["zoo:cnn_small.digits"]}
    assert call.kwargs["headers"] == {"Idempotency-Key": "k-1"}


def test_extend_call_refuses_an_invalid_cap_before_sending():
    with pytest.raises(ValueError, match="max_seeds"):
        _core.extend_call(uuid.uuid4(), max_seeds=1, candidates=None, time_budget_seconds=None,
                          idempotency_key=None)
