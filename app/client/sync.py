"""The blocking client, :class:`Client`, on ``httpx.Client``."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from app.client import _core
from app.client.errors import JobFailedError, ScoutError, WaitTimeout
from app.client.export import render
from app.schemas.backbones import BackbonePage, BackboneRead
from app.schemas.datasets import DatasetRead
from app.schemas.rankings import RankingRead, RankingRow


class Client:
    """A Transfer Scout server, blocking. ``url`` / ``key`` default to ``TSCOUT_API_URL`` / ``TSCOUT_API_KEY``.

    Every method returns the service's typed model (``app.schemas``) or raises a
    :class:`~app.client.errors.ScoutError` subclass carrying the service's ``error`` code.

    Examples
    --------
    >>> with Client("http://127.0.0.1:8000") as scout:                      # doctest: +SKIP
    ...     dataset = scout.upload_dataset("pets/")                         # a folder: zipped as it streams
    ...     job = scout.rank(dataset.id, probe={"top_k": 2})
    ...     job = scout.wait(job, on_progress=lambda s: print(s["stage"]))
    ...     print(scout.export(job, "csv"))
    """

    def __init__(self, url: str | None = None, key: str | None = None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url, key = _core.settings_from_env(url, key)
        self._http = httpx.Client(base_url=self.url, headers=_core.headers_for(key), transport=transport,
                                  timeout=httpx.Timeout(timeout, read=max(timeout, 600.0)))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _core.Call) -> Any:
        try:
            response = self._http.request(call.method, call.path, **call.kwargs)
        except httpx.HTTPError as exc:
            raise _core.transport_error(exc, self.url) from None
        return _core.checked(response, call.parse)

    # -- datasets ---------------------------------------------------------------------------------------
    def upload_dataset(self, source: str | Path | bytes | IO[bytes], *, name: str | None = None,
                       filename: str | None = None, task_type: str | None = None, text_column: str | None = None,
                       label_column: str | None = None, label_columns: list[str] | None = None,
                       on_bad_file: str | None = None) -> DatasetRead:
        """Upload a target dataset: a file, a folder of class sub-folders (zipped on the fly), or bytes."""
        call, opened = _core.upload_call(source, name=name, filename=filename, task_type=task_type,
                                         text_column=text_column, label_column=label_column,
                                         label_columns=label_columns, on_bad_file=on_bad_file)
        try:
            return self._send(call)
        finally:
            if opened is not None:
                opened.close()

    def dataset(self, dataset_id: Any) -> DatasetRead:
        return self._send(_core.Call("GET", f"/v1/datasets/{getattr(dataset_id, 'id', dataset_id)}",
                                     parse=lambda r: DatasetRead.model_validate(r.json())))

    # -- backbones --------------------------------------------------------------------------------------
    def backbones(self, **filters: Any) -> BackbonePage:
        return self._send(_core.Call("GET", "/v1/backbones", {"params": {k: v for k, v in filters.items() if v}},
                                     lambda r: BackbonePage.model_validate(r.json())))

    def register_backbone(self, backbone_id: str, *, weights: str | None = None, **card: Any) -> BackboneRead:
        body = {"id": backbone_id, **({"weights": weights} if weights else {}), **card}
        return self._send(_core.Call("POST", "/v1/backbones", {"json": body},
                                     lambda r: BackboneRead.model_validate(r.json())))

    # -- rankings ---------------------------------------------------------------------------------------
    def rank(self, dataset_id: Any, *, backbones: list[str] | Mapping[str, Any] | None = None,
             layers: Any = "auto", metrics: list[str] | None = None, probe: Mapping[str, Any] | None = None,
             idempotency_key: str | None = None, **options: Any) -> RankingRead:
        """Start a ranking job (``POST /v1/rankings``); returns it PENDING. Other ``RankingCreate`` fields
        (``bootstrap``, ``subset_size``, ``aggregation``, ``seed``…) go in ``options``."""
        return self._send(_core.rank_call(dataset_id, backbones=backbones, layers=layers, metrics=metrics,
                                          probe=probe, idempotency_key=idempotency_key, options=options))

    def rank_feature_sets(self, feature_sets: Sequence[Any], *, target: Any = None,
                          metrics: list[str] | None = None, idempotency_key: str | None = None,
                          **options: Any) -> RankingRead:
        """Rank precomputed feature sets of the same samples (features datasets, one per model, or their ids)
        against each other, for the labels of ``target`` (a features dataset; default: the first set)."""
        backbones = _core.feature_set_ids(feature_sets)
        return self.rank(feature_sets[0] if target is None else target, backbones=backbones, metrics=metrics,
                         idempotency_key=idempotency_key, **options)

    def ranking(self, job: Any) -> RankingRead:
        return self._send(_core.ranking_call(job))

    def extend_probes(self, job: Any, *, max_seeds: int, candidates: list[str] | None = None,
                      time_budget_seconds: float | None = None, idempotency_key: str | None = None) -> RankingRead:
        """More paired seeds for a finished ranking's verdicts: a new job reusing every stored run."""
        return self._send(_core.extend_call(job, max_seeds=max_seeds, candidates=candidates,
                                            time_budget_seconds=time_budget_seconds, idempotency_key=idempotency_key))

    def table(self, job: Any) -> list[RankingRow]:
        return self.ranking(job).table

    def cancel(self, job: Any) -> None:
        self._send(_core.Call("POST", f"/v1/rankings/{_core.job_id_of(job)}/cancel", parse=lambda r: None))

    def wait(self, job: Any, *, on_progress: _core.ProgressCallback | None = None, timeout: float | None = None,
             raise_on_failure: bool = False) -> RankingRead:
        """Follow the job's server-sent events until it ends, calling ``on_progress(state)`` on each change
        (``state``: status, stage, progress with per-stage done/total); returns the final ranking."""
        job_id = _core.job_id_of(job)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                with self._http.stream("GET", f"/v1/rankings/{job_id}/events",
                                       timeout=httpx.Timeout(60.0, read=30.0)) as stream:
                    if stream.status_code >= 400:
                        stream.read()
                        _core.checked(stream, lambda r: None)
                    for state in _core.events(stream.iter_lines()):
                        if on_progress is not None:
                            on_progress(state)
                        if deadline is not None and time.monotonic() > deadline:
                            raise WaitTimeout(f"ranking {job_id} still {state.get('status')} after {timeout} s")
            except httpx.ReadTimeout:
                pass  # a long unit of work and a quiet stream: reconnect and keep following
            except ScoutError:
                raise
            except httpx.HTTPError as exc:
                raise _core.transport_error(exc, self.url) from None
            final = self.ranking(job_id)
            if final.status.value in _core.TERMINAL:
                if raise_on_failure and final.status.value == "FAILED":
                    raise JobFailedError(f"ranking {job_id} failed: {final.error}", final)
                return final
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"ranking {job_id} still {final.status.value} after {timeout} s")
            time.sleep(0.2)  # the stream ended early (a restart?): reconnect without spinning

    def plot(self, job: Any, name: str = "ranking", fmt: str = "png") -> bytes:
        """A figure of the ranking: ``ranking``, ``layers`` or ``probes``, as PNG or SVG bytes."""
        return self._send(_core.plot_call(job, name, fmt))

    def export(self, job: Any, fmt: str = "csv") -> str:
        """The ranking as CSV, JSON or a self-contained HTML report (table, ranking plot, verdict texts)."""
        ranking = self.ranking(job)
        svg = self.plot(ranking, "ranking", "svg").decode() if fmt == "html" and ranking.table else None
        return render(ranking, fmt, svg)
