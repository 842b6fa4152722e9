"""Subcommands of ``kmtpe``; each module defines ``register(subparsers)``."""
