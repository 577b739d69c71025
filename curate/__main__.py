"""`python -m curate`."""
from .cli import main

main()
