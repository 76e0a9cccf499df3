"""``python -m lookalike`` runs the command line."""

from lookalike.cli import main

main()
