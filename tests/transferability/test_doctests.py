"""The numbers in every docstring Example are real: run them."""

import doctest
import importlib
import pkgutil

import pytest

import app.transferability as package

MODULES = sorted(m.name for m in pkgutil.iter_modules(package.__path__))


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    mod = importlib.import_module(f"app.transferability.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
