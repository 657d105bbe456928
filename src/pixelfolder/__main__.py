"""`python -m pixelfolder ...`: the same command line as `pixelfolder ...` (also `torchrun ... -m pixelfolder
train`)."""
from .cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
