"""The ``qb`` command line (``qb --help``); every command takes ``--json``."""
