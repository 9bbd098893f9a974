"""Why a backbone cannot be described, loaded or registered. Plain ``ValueError`` subclasses (this package
knows nothing of HTTP); ``app.services.backbones`` maps them once to 404 / 415 / 422.

Every message names the backbone, the file or the field, and, for missing weights, where to place them.
"""

from __future__ import annotations


class BackboneError(ValueError):
    """A backbone cannot be used as asked."""


class UnknownBackbone(BackboneError, LookupError):
    """No card, registration or hub family knows this id."""


class InvalidBackbone(BackboneError):
    """A malformed id, card or module; weights that do not fit the architecture; a tag the hub lacks."""


class WeightsUnavailable(BackboneError):
    """The weights are not on local disk (the server never downloads); the message says where to put them."""


class UnsupportedWeights(BackboneError):
    """Uploaded bytes are no weights format we load (pickles are refused unread)."""
