"""One APIRouter per resource, collected here."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routes import backbones, health, jobs


def api_routers() -> list[APIRouter]:
    return [health.router, jobs.router, backbones.router]
