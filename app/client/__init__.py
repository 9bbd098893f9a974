"""The Python client of a Transfer Scout server: :class:`Client` (blocking) and :class:`AsyncClient`, on
httpx. Typed: methods return the service's own response models (``app.schemas``); errors raise
:class:`ScoutError` subclasses named after the service's ``error`` codes. Uploads take a file, bytes or a
folder (zipped while it streams); ``wait`` follows a job's server-sent events with a progress callback;
``export`` writes CSV, JSON or a self-contained HTML report.

This package imports only ``app.schemas`` from the service (never its services, database or models), so it
works against a remote server with nothing else running. ``tscout rank`` and ``tscout rankings`` use it.
"""

from app.client.async_ import AsyncClient
from app.client.errors import (
    BackboneUnavailableError,
    BadRequestError,
    ConflictError,
    InvalidInputError,
    JobFailedError,
    NotFoundError,
    PayloadTooLargeError,
    ScoutError,
    ServerError,
    ServiceUnavailableError,
    TransportError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    ValidationError,
    WaitTimeout,
)
from app.client.export import FORMATS as EXPORT_FORMATS
from app.client.sync import Client

__all__ = ["EXPORT_FORMATS", "AsyncClient", "BackboneUnavailableError", "BadRequestError", "Client", "ConflictError",
           "InvalidInputError", "JobFailedError", "NotFoundError", "PayloadTooLargeError", "ScoutError",
           "ServerError", "ServiceUnavailableError", "TransportError", "UnauthorizedError",
           "UnsupportedMediaTypeError", "ValidationError", "WaitTimeout"]
