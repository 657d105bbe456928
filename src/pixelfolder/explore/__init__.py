"""Seeing what a generator does: interpolation and zoom videos (video.py), labelled sheets (sheets.py), a local
explorer page (serve.py, static/), and projection of real images into W (project.py)."""

from ..errors import PixelfolderError


def need_generator(G, what: str = "a video", way_out: str = "sample it with `pixelfolder generate`") -> None:
    """Refuse, in one line, networks without a mapping network to draw, mix, interpolate or project w's in."""
    if getattr(G, "kind", None) != "generator" or not hasattr(G, "mapping") or not hasattr(G, "synthesis"):
        raise PixelfolderError(f"{what} needs a generator with a mapping network (z -> W); "
                               f"{getattr(G, 'arch', type(G).__name__)} is a {getattr(G, 'kind', 'network')} model "
                               f"without one: {way_out}")
