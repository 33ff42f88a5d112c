"""`python -m dtnn ...` is the same as the `dtnn` console script."""
import sys

from dtnn.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
