"""Production settings pass Django's deployment checks when DEBUG is off."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_deploy_checks_pass_with_debug_off(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "0",
        "SECRET_KEY": "a-production-secret-key-that-is-long-and-random-0123456789-abcdefgh",
        "SECURE_SSL_REDIRECT": "1",
        "SECURE_HSTS_PRELOAD": "1",
        "ALLOWED_HOSTS": "cc.example.com",
        "VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_secure_cookies_and_headers_when_debug_is_off(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS > 0,"
        " s.SECURE_CONTENT_TYPE_NOSNIFF, s.X_FRAME_OPTIONS)"
    )
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": "x" * 60, "VAR_DIR": str(tmp_path)}
    env.pop("SESSION_COOKIE_SECURE", None)
    env.pop("CSRF_COOKIE_SECURE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5:] == ["True", "True", "True", "True", "DENY"]


def read_settings(tmp_path, expression: str, **env_vars) -> subprocess.CompletedProcess:
    env = {**os.environ, "SECRET_KEY": "x" * 60, "VAR_DIR": str(tmp_path), **env_vars}
    for name in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        if name not in env_vars:
            env.pop(name, None)
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", f"from django.conf import settings as s; print({expression})"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("name", ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"])
@pytest.mark.parametrize("value", ["0", "false", "no"])
def test_secure_cookies_cannot_be_turned_off_while_debug_is_off(tmp_path, name, value):
    result = read_settings(tmp_path, "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE", DEBUG="0", **{name: value})
    assert result.returncode != 0
    assert f"{name} cannot be turned off while DEBUG is off" in result.stderr


def test_secure_cookies_stay_on_when_asked_for_while_debug_is_off(tmp_path):
    result = read_settings(
        tmp_path, "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE", DEBUG="0", SESSION_COOKIE_SECURE="1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["True", "True"]


def test_development_serves_plain_http_cookies(tmp_path):
    result = read_settings(
        tmp_path, "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE", DEBUG="1", SESSION_COOKIE_SECURE="0"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["False", "False"]
