"""Why an upload was refused. Plain ``ValueError`` subclasses (this package knows nothing of HTTP);
``app.services.datasets`` maps them to 415 / 413 / 422.

Every message names the offending file, row, column or value, and, for a cap, the setting that sets it.
"""

from __future__ import annotations


class DatasetRejected(ValueError):
    """The caller's upload cannot become a dataset."""


class UnknownFormat(DatasetRejected):
    """The upload is none of the supported formats."""


class LimitExceeded(DatasetRejected):
    """A size cap was hit (upload, archive total, member, compression ratio, file count, pixels)."""


class InvalidDataset(DatasetRejected):
    """The content is malformed, hostile or inconsistent (bad names, labels, rows, images)."""
