"""`python -m capture`."""
from .cli import main

main()
