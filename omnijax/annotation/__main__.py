"""`python -m omnijax.annotation serve|precision|agreement|export|import ...` (see cli)."""

from omnijax.annotation import cli

if __name__ == "__main__":
    cli.run()
