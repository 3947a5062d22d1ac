"""One module per `lrsim` subcommand; each exposes `add(subparsers)`."""
