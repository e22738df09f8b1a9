"""Sub-commands of the `ufvc` CLI.

Each module here defines `register(subparsers)`, which adds one sub-command and
sets its handler with `parser.set_defaults(func=handler)`. A handler takes the
parsed arguments and returns an exit code. `ufvc.cli` discovers the modules.
"""
