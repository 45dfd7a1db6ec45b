"""strategy lane (see README and the issue tracker); populated by its own issue."""
