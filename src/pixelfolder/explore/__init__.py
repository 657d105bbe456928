"""Seeing what a generator does: interpolation and zoom videos (video.py), labelled sheets (sheets.py), a local
explorer page (serve.py, static/), and projection of real images into W (project.py)."""
