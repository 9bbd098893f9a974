"""Transfer Scout: rank pretrained source models for a target dataset and flag negative transfer."""

__version__ = "0.1.0"
