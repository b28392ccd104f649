"""`python -m assessengine` runs the command line."""

from .cli import main

main()
