"""quantbridge's Airflow plugin: the risk dashboard, served by the api-server under ``/quantbridge``
behind Airflow's login, with an entry in the UI's navigation.

Airflow imports every ``.py`` file of the plugins folder and registers the ``AirflowPlugin`` subclasses it
finds; this is the only one. The app itself is :mod:`quantbridge_airflow.dashboard`.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from quantbridge_airflow.dashboard import URL_PREFIX, create_app


class QuantbridgePlugin(AirflowPlugin):
    """Mounts the dashboard app and adds "Risk dashboard" to the UI's navigation."""

    name = "quantbridge"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "quantbridge risk dashboard"}]
    # href relative (no leading slash), as Airflow's UI resolves it against its base URL.
    external_views = [
        {
            "name": "Risk dashboard",
            "href": URL_PREFIX.lstrip("/") + "/",
            "destination": "nav",
            "url_route": "risk_dashboard",
        }
    ]
