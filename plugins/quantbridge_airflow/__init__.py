"""Airflow glue of quantbridge: settings from Airflow Variables, the Redis provider hook, Assets.

Lives in the plugins folder (Airflow puts it on ``sys.path``); DAG files import it, domain packages never do.
"""
