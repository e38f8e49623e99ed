"""Settings: explicit argument > environment > Secrets Manager secret > default."""

import json

import boto3
import pytest
from moto import mock_aws

from credit import settings


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.secret_values.cache_clear()
    with mock_aws():
        client = boto3.client("secretsmanager")
        arn = client.create_secret(
            Name="credit-dev/services",
            SecretString=json.dumps({"MYSQL_URL": "mysql://app:s3cret@db.internal:3306/credit"}),
        )["ARN"]
        yield arn
    settings.secret_values.cache_clear()


def test_default_when_nothing_is_set():
    assert settings.get(settings.REDIS_URL, environ={}) == "redis://127.0.0.1:6379/0"


def test_environment_beats_default_and_explicit_beats_environment():
    env = {settings.REDIS_URL: "redis://cache:6379/1"}
    assert settings.get(settings.REDIS_URL, environ=env) == "redis://cache:6379/1"
    assert settings.get(settings.REDIS_URL, "redis://x:1/2", env) == "redis://x:1/2"


def test_an_empty_variable_counts_as_unset():
    assert settings.get(settings.MIN_AGE, environ={settings.MIN_AGE: ""}) == "18"


def test_a_secret_fills_in_what_the_environment_does_not_set(secret):
    env = {settings.SECRET_ID: secret}
    assert (
        settings.get(settings.MYSQL_URL, environ=env)
        == "mysql://app:s3cret@db.internal:3306/credit"
    )
    assert settings.get(settings.REDIS_URL, environ=env) == "redis://127.0.0.1:6379/0"
    env[settings.MYSQL_URL] = "mysql://root@127.0.0.1/credit"
    assert settings.get(settings.MYSQL_URL, environ=env) == "mysql://root@127.0.0.1/credit"


def test_an_unreadable_secret_names_the_variable(secret):
    with pytest.raises(settings.SettingsError, match="CREDIT_SECRET_ID"):
        settings.get(settings.MYSQL_URL, environ={settings.SECRET_ID: "no-such-secret"})


def test_a_bad_integer_names_the_variable():
    with pytest.raises(settings.SettingsError, match="PENDING_CACHE_TTL_SECONDS"):
        settings.get_int(settings.PENDING_TTL, environ={settings.PENDING_TTL: "soon"})


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://root@127.0.0.1:3306/credit", {"ssl_disabled": True}),
        ("mysql://u:p@db.example.com/credit", {}),
        ("mysql://u:p@db.example.com/credit?ssl=disabled", {"ssl_disabled": True}),
        ("mysql://u:p@db/credit?ssl=required", {"ssl": {"ca": None, "check_hostname": False}}),
        (
            "mysql://u:p@db/credit?ssl=verify-identity&ssl_ca=/etc/rds.pem",
            {"ssl": {"ca": "/etc/rds.pem", "check_hostname": True}},
        ),
    ],
)
def test_mysql_tls_follows_the_url(url, expected):
    from credit.mysql import connect_kwargs

    kwargs = connect_kwargs(url)
    tls = {k: v for k, v in kwargs.items() if k.startswith("ssl")}
    assert tls == expected
    assert kwargs["password"] in ("", "p")


def test_a_bad_tls_mode_is_refused():
    from credit.mysql import connect_kwargs

    with pytest.raises(settings.SettingsError, match="ssl must be"):
        connect_kwargs("mysql://u@db/credit?ssl=sometimes")


@pytest.mark.parametrize("name", ["credit", "credit_test_app-input", "a$b", "x" * 64])
def test_database_names_mysql_can_quote_are_accepted(name):
    from credit.mysql import _identifier

    assert _identifier(name) == name


@pytest.mark.parametrize("name", ["", "a`b", "a b", "x" * 65, "caf\u00e9", "a;drop"])
def test_other_database_names_are_refused(name):
    from credit.mysql import _identifier

    with pytest.raises(settings.SettingsError, match="database name"):
        _identifier(name)


@pytest.mark.parametrize("raw", ["soon", "0", "-1", "inf", "nan"])
def test_a_duration_must_be_a_positive_number(raw):
    env = {settings.MYSQL_READ_TIMEOUT: raw}
    with pytest.raises(settings.SettingsError, match="MYSQL_READ_TIMEOUT_SECONDS"):
        settings.get_float(settings.MYSQL_READ_TIMEOUT, environ=env)


def test_every_session_is_bounded_by_the_timeouts():
    from credit.mysql import Timeouts, connect_kwargs

    kwargs = connect_kwargs("mysql://root@127.0.0.1/credit", Timeouts(3, 4.5, 6))
    assert kwargs["read_timeout"] == kwargs["write_timeout"] == 4.5
    assert "lock_wait_timeout = 3, innodb_lock_wait_timeout = 3" in kwargs["init_command"]
    assert "/*M!100100 , max_statement_time = 3 */" in kwargs["init_command"]
    assert kwargs["init_command"].startswith("SET SESSION TRANSACTION ISOLATION LEVEL")
