from __future__ import annotations

from pathlib import Path

import pytest

from quantbridge.errors import ConfigError
from quantbridge.settings import Settings, load_settings


def test_load_settings_when_no_environment_then_defaults_run_on_one_machine():
    s = load_settings(environ={})
    assert s.spark_master == "local[*]"
    assert s.redis_host == "127.0.0.1" and s.redis_port == 6390 and s.redis_db == 0
    assert s.dask_scheduler == ""
    assert s.lake_root.name == ".lake"


def test_load_settings_when_qb_variables_set_then_they_override_defaults():
    env = {"QB_LAKE_ROOT": "/data/lake", "QB_REDIS_URL": "redis://10.0.0.5:7000/3", "QB_MAX_STALE_DAYS": "7",
           "QB_UNIVERSE": "aapl, msft", "QB_MAX_DAILY_RETURN": "2.5", "PATH": "/bin"}
    s = load_settings(environ=env)
    assert s.lake_root == Path("/data/lake")
    assert (s.redis_host, s.redis_port, s.redis_db) == ("10.0.0.5", 7000, 3)
    assert s.max_stale_days == 7 and s.max_daily_return == 2.5
    assert s.universe == ("AAPL", "MSFT")


def test_load_settings_when_overrides_given_then_they_win_over_environment():
    s = load_settings({"spark_master": "spark://m:7077"}, environ={"QB_SPARK_MASTER": "local[2]"})
    assert s.spark_master == "spark://m:7077"


def test_load_settings_when_unknown_qb_variable_then_error_names_it():
    with pytest.raises(ConfigError, match="QB_LAKE_ROT"):
        load_settings(environ={"QB_LAKE_ROT": "/x"})


def test_load_settings_when_integer_setting_is_not_a_number_then_error_names_variable_and_value():
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"QB_MAX_STALE_DAYS": "ten"})
    assert "QB_MAX_STALE_DAYS" in str(info.value) and "'ten'" in str(info.value)


@pytest.mark.parametrize(
    "changes, field",
    [({"max_stale_days": 0}, "max_stale_days"), ({"min_daily_return": 0.1}, "min_daily_return"),
     ({"max_cross_sectional_skew": -1}, "max_cross_sectional_skew"), ({"history_days": 3}, "history_days"),
     ({"array_backend": "tpu"}, "array_backend"), ({"redis_url": "http://x"}, "redis_url")],
)
def test_settings_when_value_out_of_range_then_config_error_names_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        Settings().replace(**changes)


def test_settings_when_password_set_then_repr_and_public_dict_redact_it():
    s = load_settings(environ={"QB_REDIS_PASSWORD": "s3cret", "QB_REDIS_URL": "redis://u:inline@h:1/0"})
    assert "s3cret" not in repr(s) and "inline" not in repr(s.as_public_dict())
    assert s.as_public_dict()["redis_password"] == "***"
    assert s.redis_url_redacted() == "redis://u:***@h:1/0"
    assert s.redis_password == "s3cret"


def test_load_settings_when_worker_metrics_port_set_then_int_and_default_9109():
    assert load_settings(environ={}).worker_metrics_port == 9109
    assert load_settings(environ={"QB_WORKER_METRICS_PORT": "0"}).worker_metrics_port == 0
    with pytest.raises(ConfigError, match="QB_WORKER_METRICS_PORT"):
        load_settings(environ={"QB_WORKER_METRICS_PORT": "nine"})


def test_load_settings_when_redis_tls_variables_set_then_fields_and_redis_tls_options(tmp_path):
    assert (load_settings(environ={}).redis_tls_ca_cert, load_settings(environ={}).redis_tls_options()) == ("", {})
    ca, cert, key = (tmp_path / n for n in ("ca.crt", "client.crt", "client.key"))
    for path in (ca, cert, key):
        path.write_text("pem\n")
    s = load_settings(environ={"QB_REDIS_URL": "rediss://h:6380/0", "QB_REDIS_PASSWORD": "s3cret",
                               "QB_REDIS_TLS_CA_CERT": str(ca), "QB_REDIS_TLS_CERT": str(cert),
                               "QB_REDIS_TLS_KEY": str(key)})
    assert s.redis_tls_options() == {"ssl_ca_certs": str(ca), "ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    public = s.as_public_dict()
    assert public["redis_tls_ca_cert"] == str(ca) and public["redis_password"] == "***"  # paths, not secrets
    assert "s3cret" not in repr(s) and "s3cret" not in str(public)


@pytest.mark.parametrize("changes, field", [
    ({"redis_tls_ca_cert": "/ca.crt"}, "redis_url"),  # TLS files on a plain redis:// URL
    ({"redis_url": "rediss://h:1/0", "redis_tls_key": "/k.pem"}, "redis_tls_cert/redis_tls_key"),
])
def test_settings_when_redis_tls_fields_inconsistent_then_config_error_names_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        Settings().replace(**changes)
