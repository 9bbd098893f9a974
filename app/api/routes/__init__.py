"""One APIRouter per resource, collected here. Order matters where paths overlap:
``/v1/backbones/{id:path}/rankings`` (rankings) must be matched before ``/v1/backbones/{id:path}``."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import backbones, datasets, docs, health, jobs, metrics, rankings


def api_routers() -> list[APIRouter]:
    return [health.router, docs.router, jobs.router, datasets.router, metrics.router, rankings.router, backbones.router]
