"""Subcommands of the ``rapsam`` CLI (each module has ``register(subparsers)``)."""
