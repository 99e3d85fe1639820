import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str, env_timezone


def test_empty_values_fall_back_to_defaults(monkeypatch):
    for name in ("A_STR", "A_BOOL", "A_INT", "A_LIST", "A_TZ"):
        monkeypatch.setenv(name, "")
    assert env_str("A_STR", "fallback") == "fallback"
    assert env_bool("A_BOOL", True) is True
    assert env_int("A_INT", 7) == 7
    assert env_list("A_LIST", ["x"]) == ["x"]
    assert env_timezone("A_TZ", "Europe/Amsterdam") == "Europe/Amsterdam"


def test_values_are_parsed(monkeypatch):
    monkeypatch.setenv("A_BOOL", "Yes")
    monkeypatch.setenv("A_INT", "42")
    monkeypatch.setenv("A_LIST", " a, b ,,c ")
    assert env_bool("A_BOOL") is True
    assert env_int("A_INT", 0) == 42
    assert env_list("A_LIST") == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("name", "value", "reader"),
    [
        ("A_BOOL", "maybe", lambda: env_bool("A_BOOL")),
        ("A_INT", "ten", lambda: env_int("A_INT", 0)),
        ("A_TZ", "Mars/Olympus", lambda: env_timezone("A_TZ", "UTC")),
    ],
)
def test_bad_values_fail_loudly_naming_the_variable(monkeypatch, name, value, reader):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        reader()
