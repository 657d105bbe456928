"""Errors meant for users: the CLI prints them as one line, without a traceback."""


class PixelfolderError(ValueError):
    """A problem with the user's input (unknown model, bad file, bad argument)."""


class CheckpointError(PixelfolderError):
    """A file that is not a readable pixelfolder (or official) checkpoint."""


class ConversionError(CheckpointError):
    """An official checkpoint whose keys or shapes cannot be mapped."""
