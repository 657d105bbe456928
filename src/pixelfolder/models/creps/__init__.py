"""CREPS: the model (model.py) and its private line-input / per-pixel-MLP blocks (lines.py)."""
from .model import CREPS, FLOAT_BYTES, HEAD_CHUNK_BYTES, CREPSConfig, CREPSSynthesis, HeadBlock, LineBlock

__all__ = ["CREPS", "FLOAT_BYTES", "HEAD_CHUNK_BYTES", "CREPSConfig", "CREPSSynthesis", "HeadBlock", "LineBlock"]
