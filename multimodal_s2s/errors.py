"""Errors about a user's input that the suite raises with one clear line (all are ValueErrors)."""


class InputError(ValueError):
    """Inputs of the wrong shape, dtype or size, caught before they reach torch internals."""


def first_line(error: BaseException) -> str:
    """The first line of ``error``'s message (its type's name when the message is empty), for one-line reports."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
