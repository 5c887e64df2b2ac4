"""`python -m nnprobe` with one torchrun rank started late (rank LATE_RANK, by LATE_BY seconds): the order in
which the ranks reach the same error is forced, not left to the machine's load."""
import os
import sys
import time

if os.environ.get("RANK") == os.environ.get("LATE_RANK"):
    time.sleep(float(os.environ.get("LATE_BY", "3")))

from nnprobe.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
