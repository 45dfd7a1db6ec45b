"""quantbridge shared base: settings, the Redis key schema and connection, lake layout, messages, errors, and
the audit chain and kill switch every component writes through.

It holds no business logic and imports no domain package and no Airflow; the domain packages
(``marketdata``, ``risk``, ``strategy``, ``execution``, ``synthetic``, ``reporting``) depend on it, never the
other way round. The ``qb`` command line lives above everything, in ``app``.
"""

__version__ = "0.1.0"
