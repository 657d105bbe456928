"""Errors meant for users: the CLI prints them as one line, without a traceback."""


def first_line(e: BaseException, *, typed: bool = False, limit: int | None = 200) -> str:
    """The first line of an exception's message for a one-line error (its type name when it has none).

    typed: prefix 'TypeName: '; limit: characters kept of the line (None: all).
    """
    lines = str(e).strip().splitlines()
    text = (lines[0][:limit] if limit else lines[0]) if lines else ""
    if typed:
        return f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text or type(e).__name__


class PixelfolderError(ValueError):
    """A problem with the user's input (unknown model, bad file, bad argument)."""


class CheckpointError(PixelfolderError):
    """A file that is not a readable pixelfolder (or official) checkpoint."""


class ConversionError(CheckpointError):
    """An official checkpoint whose keys or shapes cannot be mapped."""
