"""`python -m nnprobe` (and `torchrun -m nnprobe`)."""
from nnprobe.cli import main

if __name__ == "__main__":
    main()
