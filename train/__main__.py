"""`python -m train` (also what torchrun runs: `torchrun --nproc-per-node 2 -m train run ...`)."""
from .cli import main

main(prog_name="train")
