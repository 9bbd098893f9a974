"""Target datasets: formats, validation, safe extraction, splits, hashing, and loading for the pipeline.

No web or executor imports here. The canonical stored form (what every format is converted to at
upload, and what embedding and probes read) is defined in :mod:`app.datasets.stored`.
"""
