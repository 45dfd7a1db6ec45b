"""quantbridge shared package: settings, Redis state schema, lake layout, errors and the ``qb`` CLI.

It holds no business logic; domain packages (``marketdata``, ``risk``, ``strategy``, ``execution``,
``synthetic``) depend on it, never the other way round.
"""

__version__ = "0.1.0"
