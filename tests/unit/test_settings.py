from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from quantbridge.errors import ConfigError
from quantbridge.settings import Settings, load_settings


def test_load_settings_when_no_environment_then_defaults_run_on_one_machine():
    s = load_settings(environ={})
    assert s.spark_master == "local[*]"
    assert s.redis_host == "127.0.0.1" and s.redis_port == 6390 and s.redis_db == 0
    assert s.dask_scheduler == ""
    assert s.lake_root.name == ".lake"


def test_load_settings_when_qb_variables_set_then_they_override_defaults():
    env = {
        "QB_LAKE_ROOT": "/data/lake",
        "QB_REDIS_URL": "redis://10.0.0.5:7000/3",
        "QB_MAX_STALE_DAYS": "7",
        "QB_UNIVERSE": "aapl, msft",
        "QB_MAX_DAILY_RETURN": "2.5",
        "PATH": "/bin",
    }
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
    [
        ({"max_stale_days": 0}, "max_stale_days"),
        ({"min_daily_return": 0.1}, "min_daily_return"),
        ({"max_cross_sectional_skew": -1}, "max_cross_sectional_skew"),
        ({"history_days": 3}, "history_days"),
        ({"array_backend": "tpu"}, "array_backend"),
        ({"redis_url": "http://x"}, "redis_url"),
    ],
)
def test_settings_when_value_out_of_range_then_config_error_names_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        Settings().replace(**changes)


def test_settings_when_password_set_then_repr_and_public_dict_redact_it():
    s = load_settings(environ={"QB_REDIS_PASSWORD": "s3cret", "QB_REDIS_URL": "redis://u:inline@h:1/0"})
    assert "s3cret" not in repr(s) and "inline" not in repr(s) and "inline" not in repr(s.as_public_dict())
    assert "redis_url='redis://u:***@h:1/0'" in repr(s)
    assert s.as_public_dict()["redis_password"] == "***"
    assert s.redis_url_redacted() == "redis://u:***@h:1/0"
    assert s.redis_password.get_secret_value() == "s3cret"


def test_load_settings_when_worker_metrics_port_set_then_int_and_default_9109():
    assert load_settings(environ={}).worker_metrics_port == 9109
    assert load_settings(environ={"QB_WORKER_METRICS_PORT": "0"}).worker_metrics_port == 0
    with pytest.raises(ConfigError, match="QB_WORKER_METRICS_PORT"):
        load_settings(environ={"QB_WORKER_METRICS_PORT": "nine"})


def test_load_settings_when_redis_tls_variables_set_then_fields_and_redis_tls_options(tmp_path):
    assert (load_settings(environ={}).redis_tls_ca_cert, load_settings(environ={}).redis_tls_options()) == (
        "",
        {},
    )
    ca, cert, key = (tmp_path / n for n in ("ca.crt", "client.crt", "client.key"))
    for path in (ca, cert, key):
        path.write_text("pem\n")
    s = load_settings(
        environ={
            "QB_REDIS_URL": "rediss://h:6380/0",
            "QB_REDIS_PASSWORD": "s3cret",
            "QB_REDIS_TLS_CA_CERT": str(ca),
            "QB_REDIS_TLS_CERT": str(cert),
            "QB_REDIS_TLS_KEY": str(key),
        }
    )
    assert s.redis_tls_options() == {
        "ssl_ca_certs": str(ca),
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(key),
    }
    public = s.as_public_dict()
    assert public["redis_tls_ca_cert"] == str(ca) and public["redis_password"] == "***"  # paths, not secrets
    assert "s3cret" not in repr(s) and "s3cret" not in str(public)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"redis_tls_ca_cert": "/ca.crt"}, "redis_url"),  # TLS files on a plain redis:// URL
        ({"redis_url": "rediss://h:1/0", "redis_tls_key": "/k.pem"}, "redis_tls_cert/redis_tls_key"),
    ],
)
def test_settings_when_redis_tls_fields_inconsistent_then_config_error_names_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        Settings().replace(**changes)


def _password_file(services_dir: Path, content: str, mode: int) -> Path:
    path = services_dir / "redis" / "password"
    path.parent.mkdir(parents=True)
    path.write_text(content)
    path.chmod(mode)
    return path


def _password(settings: Settings) -> str:
    return settings.redis_password.get_secret_value()


def test_load_settings_when_no_password_given_and_password_file_0600_then_it_is_used(tmp_path):
    _password_file(tmp_path, "from-the-file\n", 0o600)
    s = load_settings(environ={"QB_SERVICES_DIR": str(tmp_path)})
    assert _password(s) == "from-the-file" and s.redis_password_file == tmp_path / "redis" / "password"
    assert "from-the-file" not in repr(s) and s.as_public_dict()["redis_password"] == "***"
    empty = load_settings({"services_dir": tmp_path}, environ={"QB_REDIS_PASSWORD": ""})
    assert _password(empty) == "from-the-file"  # an empty QB_REDIS_PASSWORD counts as not given


def test_load_settings_when_password_given_or_url_remote_then_password_file_not_read(tmp_path):
    _password_file(tmp_path, "from-the-file", 0o600)
    env = {"QB_SERVICES_DIR": str(tmp_path)}
    assert _password(load_settings(environ={**env, "QB_REDIS_PASSWORD": "from-env"})) == "from-env"
    assert _password(load_settings({"redis_password": "override"}, environ=env)) == "override"
    assert _password(load_settings(environ={**env, "QB_REDIS_URL": "redis://db.internal:6379/0"})) == ""
    inline = load_settings(environ={**env, "QB_REDIS_URL": "redis://:inline@127.0.0.1:6390/0"})
    assert _password(inline) == ""  # the URL's own password is used
    assert _password(load_settings(environ={"QB_SERVICES_DIR": str(tmp_path / "none")})) == ""


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_load_settings_when_password_file_open_to_group_or_others_then_error_names_path_and_mode(
    tmp_path, mode
):
    path = _password_file(tmp_path, "from-the-file", mode)
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"QB_SERVICES_DIR": str(tmp_path)})
    message = str(info.value)
    assert str(path) in message and f"mode {mode:04o}" in message and "chmod 600" in message
    assert "from-the-file" not in message


def test_load_settings_when_password_file_empty_then_error_says_regenerate(tmp_path):
    path = _password_file(tmp_path, " \n", 0o600)
    with pytest.raises(ConfigError, match="non-empty password.*make services") as info:
        load_settings(environ={"QB_SERVICES_DIR": str(tmp_path)})
    assert str(path) in str(info.value)


def test_load_settings_when_password_file_unreadable_then_error_names_path(tmp_path):
    path = tmp_path / "redis" / "password"
    path.mkdir(parents=True, mode=0o700)  # a folder where the file should be: stat works, reading does not
    with pytest.raises(ConfigError, match="a file this user can read") as info:
        load_settings(environ={"QB_SERVICES_DIR": str(tmp_path)})
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "url, shown",
    [
        ("redis://u:inline@h:1/0", "redis://u:***@h:1/0"),
        ("redis://:p%40ss@[::1]:6390/2", "redis://:***@[::1]:6390/2"),
        ("redis://h:1/0?password=inline&db=2", "redis://h:1/0?password=***&db=2"),
        ("rediss://h:6380/0", "rediss://h:6380/0"),
        ("redis://[::1", "<unparseable URL, not shown>"),
    ],
)
def test_redact_url_when_password_in_user_part_or_query_then_replaced(url, shown):
    from quantbridge.settings import redact_url

    assert redact_url(url) == shown


def test_settings_when_url_invalid_or_variable_unknown_then_error_shows_no_secret():
    with pytest.raises(ConfigError, match="redis_url") as bad_scheme:
        load_settings(environ={"QB_REDIS_URL": "http://u:inline@h:1/0"})
    with pytest.raises(ConfigError, match="numeric port") as bad_port:
        load_settings(environ={"QB_REDIS_URL": "redis://u:inline@h:port/0"})
    with pytest.raises(ConfigError, match="QB_REDIS_PASWORD") as misspelt:
        load_settings(environ={"QB_REDIS_PASWORD": "inline"})
    with pytest.raises(ConfigError, match="unparseable URL, not shown"):
        load_settings(environ={"QB_REDIS_URL": "redis://:inline@[::1"})
    assert all("inline" not in str(e.value) for e in (bad_scheme, bad_port, misspelt))


def test_settings_when_password_set_then_no_repr_str_or_dump_shows_it():
    s = load_settings(environ={"QB_REDIS_PASSWORD": "s3cret", "QB_REDIS_URL": "redis://:inline@h:1/0"})
    shown = [repr(s), str(s), repr(s.model_dump()), s.model_dump_json(), repr(s.as_public_dict())]
    assert all("s3cret" not in text and "inline" not in text for text in shown)
    assert s.model_dump()["redis_password"] == "***" and s.model_dump()["redis_url"] == "redis://:***@h:1/0"
    assert s.redis_url == "redis://:inline@h:1/0"  # the attribute is the URL as given, for the client


@pytest.mark.parametrize(
    "environ, shown",
    [
        ({"QB_MAX_STALE_DAYS": "-3"}, "setting max_stale_days=-3 is invalid: expected greater than 0"),
        ({"QB_VAR_CONFIDENCE": "1.5"}, "setting var_confidence=1.5 is invalid: expected less than 1"),
        ({"QB_VAR_WINDOW": "19"}, "var_window=19 is invalid: expected greater than or equal to 20"),
        ({"QB_ARRAY_BACKEND": "tpu"}, "array_backend='tpu' is invalid: expected 'auto', 'gpu' or 'cpu'"),
        ({"QB_VAR_MODEL": "garch"}, "var_model='garch' is invalid: expected 'normal', 'student_t'"),
        ({"QB_WORKER_METRICS_PORT": "70000"}, "worker_metrics_port=70000 is invalid: expected less than"),
        ({"QB_RISK_STALE_S": "-1"}, "risk_stale_s=-1.0 is invalid: expected greater than or equal to 0"),
    ],
)
def test_load_settings_when_value_outside_its_type_then_error_names_field_value_expected_and_variable(
    environ, shown
):
    with pytest.raises(ConfigError, match=re.escape(shown)) as info:
        load_settings(environ=environ)
    assert f"(variable {next(iter(environ))})" in str(info.value)


def test_settings_when_built_directly_or_replaced_then_validated_and_environment_not_read(monkeypatch):
    monkeypatch.setenv("QB_SPARK_MASTER", "spark://from-env:7077")
    assert Settings().spark_master == "local[*]"  # only load_settings reads QB_*
    with pytest.raises(ConfigError, match="setting var_limit=0.0 is invalid"):
        Settings(var_limit=0)
    with pytest.raises(ConfigError, match=r"redis_pasword='\*\*\*'.*a known setting"):
        Settings().replace(redis_pasword="s3cret")  # the value of an unknown name may be a secret
    with pytest.raises(ValidationError):  # frozen
        Settings().seed = 1  # type: ignore[misc]
    assert Settings().replace(universe=["aapl", " msft "], seed="7").universe == ("AAPL", "MSFT")


def test_load_settings_when_redis_password_malformed_then_error_does_not_show_it():
    with pytest.raises(ConfigError, match=r"redis_password='\*\*\*'") as info:
        load_settings({"redis_password": ["s3cret"]}, environ={})
    assert "s3cret" not in str(info.value)


def test_settings_fields_when_listed_then_each_has_a_description():
    assert [name for name, f in Settings.model_fields.items() if not f.description] == []
    assert Settings.model_fields["max_stale_days"].description.startswith("A close equal to the previous")


@pytest.mark.parametrize("name", ["history_days", "var_confidence", "redis_prefix"])
def test_load_settings_when_override_is_a_json_boolean_then_config_error_names_field_and_value(name):
    with pytest.raises(ConfigError, match=rf"{name}=True .*not a boolean .*QB_{name.upper()}"):
        load_settings({name: True}, environ={})
