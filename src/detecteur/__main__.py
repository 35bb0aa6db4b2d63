"""`python -m detecteur …` is the `detecteur` command."""

from detecteur.cli import app

app()
