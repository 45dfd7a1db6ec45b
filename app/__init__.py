"""The application layer: the ``qb`` command line (``app.cli``), the demo, and the project's own local
services (``app.services``: redis-server and the Airflow stack, ``app.airflow_env``: the environment
Airflow runs in).

It sits on top: it may import the domain packages, ``plugins`` and Airflow; nothing below imports it.
"""
