"""Errors about a user's input that the suite raises with one clear line (all are ValueErrors)."""


class InputError(ValueError):
    """Inputs of the wrong shape, dtype or size, caught before they reach torch internals."""
