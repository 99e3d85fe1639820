"""Campaign Central settings: read from environment variables only.

With nothing set, the embedded default runs: SQLite, the server-less
``filesystem://`` Celery broker and email written to files under ``var/``.
Every variable is documented in ``.env.example``.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from config.env import (
    env_basic_auth,
    env_bool,
    env_int,
    env_list,
    env_str,
    env_timezone,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    # Embedded single-host default: a random key generated once and kept under var/.
    # Several hosts must share one SECRET_KEY (tokens are signed with it): set it.
    key_file = VAR_DIR / "dev_secret_key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
# Keys used before a rotation, newest first: tokens they signed (tracking, unsubscribe and click
# links in mail already sent, sessions, password resets) still verify; new ones use SECRET_KEY.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PUBLIC_BASE_URL = env_str("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "django_celery_beat",
    "anymail",
    "accounts",
    "contacts",
    "templates_app",
    "campaigns",
    "tracking",
    "analytics",
    "callbacks",
    "webhooks",
]

MIDDLEWARE = [
    "config.middleware.RequestIDMiddleware",
    # Before anything that answers on its own (413, 404, ...), so those answers carry CORS headers too.
    "corsheaders.middleware.CorsMiddleware",
    "config.http_errors.ApiJsonErrorsMiddleware",
    "config.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'campaign_central.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Web, worker and beat share one file: WAL lets readers run beside the writer,
    # IMMEDIATE transactions queue writers instead of failing with "database is locked".
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so a Celery worker process started by a test sees the test data.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test_campaign_central.sqlite3")}
else:
    _db["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (login throttles, rate limits) ------------------------------------

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Shared by every local process (web, worker, beat), unlike the in-memory cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Auth -----------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_FAILURE_IP_LIMIT = env_int("LOGIN_FAILURE_IP_LIMIT", 50)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 900)
INVITATION_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3 * 24 * 3600)
PASSWORD_RESET_TIMEOUT = INVITATION_TIMEOUT

# --- Internationalisation ---------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_TIMEZONE = env_timezone("DEFAULT_TIMEZONE", "Europe/Amsterdam")

# --- Static files -----------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
# Uploads above this size are streamed to a temporary file, never held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_MB", 512) * 1024 * 1024

# --- Limits on input ----------------------------------------------------------

# Trusted reverse proxies in front of gunicorn. With 0, X-Forwarded-For is never read; with N,
# the client is the address the N-th proxy from the right saw (throttles, lockouts, event IPs).
NUM_PROXIES = env_int("NUM_PROXIES", 0)
if NUM_PROXIES < 0:
    raise ImproperlyConfigured("NUM_PROXIES must be 0 or more")
# Largest request body outside the CSV import endpoints (JSON and forms); larger bodies get 413.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_KB", 1024) * 1024
# Largest body a provider may post to its webhooks (/anymail/..., /webhooks/...): providers batch
# events, and a refused batch would be retried for days, so this limit is wider.
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_MB", 20) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_BYTES, WEBHOOK_MAX_BODY_BYTES)
# One JSON value stored in a JSON field (contact attributes, event properties, rules, ...).
JSON_FIELD_MAX_BYTES = env_int("JSON_FIELD_MAX_KB", 64) * 1024
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 20)
JSON_MAX_KEYS = env_int("JSON_MAX_KEYS", 500)
# Dates and times accepted anywhere (schedules, callbacks, holidays, report ranges).
DATE_MIN_YEAR = env_int("DATE_MIN_YEAR", 1970)
DATE_MAX_YEAR = env_int("DATE_MAX_YEAR", 2200)
if not 1 < DATE_MIN_YEAR < DATE_MAX_YEAR < 9999:
    raise ImproperlyConfigured("DATE_MIN_YEAR and DATE_MAX_YEAR must be years with MIN < MAX, within 2..9998")
# Addresses one test send may go to (one message each).
TEST_SEND_MAX_RECIPIENTS = env_int("TEST_SEND_MAX_RECIPIENTS", 10)
# Tracking hits stored per token (message) per minute; further hits are counted, not stored.
TRACKING_EVENTS_PER_TOKEN_PER_MINUTE = env_int("TRACKING_EVENTS_PER_TOKEN_PER_MINUTE", 20)
# /health reports the workers as stale when beat's heartbeat task has not run for this long.
HEALTH_WORKER_MAX_AGE_SECONDS = env_int("HEALTH_WORKER_MAX_AGE_SECONDS", 300)
# An import waits at most this long for its reader or writer before failing the job.
IMPORT_STALL_SECONDS = env_int("IMPORT_STALL_SECONDS", 300)

# --- REST framework ---------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.StandardPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "config.schema.ApiAutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "login": env_str("THROTTLE_LOGIN_RATE", "30/min"),
        "register": env_str("THROTTLE_REGISTER_RATE", "10/hour"),
        "invitation": env_str("THROTTLE_INVITATION_RATE", "30/hour"),
        # Reset requests and confirmations together, per client address.
        "password_reset": env_str("THROTTLE_PASSWORD_RESET_RATE", "10/hour"),
    },
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # How many reverse proxies stand in front of the web server. 0 (the default): the client is
    # REMOTE_ADDR and X-Forwarded-For is ignored, so a client cannot pick its own address.
    "NUM_PROXIES": NUM_PROXIES,
}

# Browser apps on these origins (comma-separated, e.g. https://app.example.com) may call /api/;
# none by default. Credentials travel in the Authorization header, never in cookies.
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-organization", "x-request-id")
CORS_EXPOSE_HEADERS = ("content-disposition", "retry-after", "x-request-id")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 10)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 14)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env_str("JWT_SIGNING_KEY") or SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Campaign Central API",
    "DESCRIPTION": "Marketing campaign back office: contacts, templates, campaigns, tracking, analytics, callbacks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Several models have a `status` field with different choices: name each enum.
    "ENUM_NAME_OVERRIDES": {
        "ContactStatusEnum": "contacts.models.ContactStatus",
        "ImportStatusEnum": "contacts.models.ImportStatus",
        "SuppressionReasonEnum": "contacts.models.SuppressionReason",
        "SuppressionKindEnum": "contacts.models.SuppressionKind",
        "RoleEnum": "accounts.models.Role",
        "CampaignStatusEnum": "campaigns.models.CampaignStatus",
        "CallbackStatusEnum": "callbacks.models.CallbackStatus",
        "MessageEventTypeEnum": "tracking.models.EventType",
    },
}

# --- Celery -----------------------------------------------------------------

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = Path(env_str("CELERY_BROKER_DIR", str(VAR_DIR / "broker")))
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
else:
    # Redis redelivers an unacknowledged task after this long; it must exceed
    # the longest countdown/ETA we use (retries wait minutes, not hours).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 2 * 3600)}

CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540)
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue(name) for name in ("default", "dispatch", "send", "events", "analytics", "webhooks")]
CELERY_TASK_ROUTES = {
    # Task names are "<app>.<area>.<task>"; routes are by that module prefix.
    "campaigns.dispatch.*": {"queue": "dispatch"},
    "campaigns.send.*": {"queue": "send"},
    "tracking.*": {"queue": "events"},
    "analytics.*": {"queue": "analytics"},
    # Outgoing webhooks wait on customers' servers: their own queue, so a slow receiver delays nothing else.
    "webhooks.*": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- Campaign sending ----------------------------------------------------------

# How often beat runs dispatch, how many due messages one run claims, how many a send task takes.
CAMPAIGN_DISPATCH_INTERVAL_SECONDS = env_int("CAMPAIGN_DISPATCH_INTERVAL_SECONDS", 5)
CAMPAIGN_DISPATCH_LIMIT = env_int("CAMPAIGN_DISPATCH_LIMIT", 5000)
CAMPAIGN_SEND_BATCH = env_int("CAMPAIGN_SEND_BATCH", 500)
# A claim or a send in progress is trusted this long; then dispatch settles it (requeue or unknown).
CAMPAIGN_LEASE_SECONDS = env_int("CAMPAIGN_LEASE_SECONDS", 300)

# --- Tracking ---------------------------------------------------------------------

# Where open/click hits and provider events wait for the database: a Redis stream drained by the
# tracking.flush task, or "sync" (inserted within the request; the embedded default).
TRACKING_BUFFER = env_str("TRACKING_BUFFER", "redis" if REDIS_URL else "sync")
if TRACKING_BUFFER not in {"redis", "sync"}:
    raise ImproperlyConfigured(f"TRACKING_BUFFER must be redis or sync, got {TRACKING_BUFFER!r}")
TRACKING_REDIS_URL = env_str("TRACKING_REDIS_URL", REDIS_URL)
if TRACKING_BUFFER == "redis" and not TRACKING_REDIS_URL:
    raise ImproperlyConfigured("TRACKING_BUFFER=redis needs REDIS_URL or TRACKING_REDIS_URL")
TRACKING_FLUSH_INTERVAL_SECONDS = env_int("TRACKING_FLUSH_INTERVAL_SECONDS", 2)
TRACKING_FLUSH_BATCH = env_int("TRACKING_FLUSH_BATCH", 5000)
TRACKING_FLUSH_SECONDS = env_int("TRACKING_FLUSH_SECONDS", 20)
TRACKING_RECLAIM_IDLE_SECONDS = env_int("TRACKING_RECLAIM_IDLE_SECONDS", 60)
TRACKING_GUARD_CACHE_SECONDS = env_int("TRACKING_GUARD_CACHE_SECONDS", 60)

# --- Callbacks --------------------------------------------------------------------

# How long a callback link in an email stays valid, and how often the public form may be posted.
CALLBACK_FORM_MAX_AGE = timedelta(days=env_int("CALLBACK_FORM_MAX_AGE_DAYS", 30))
CALLBACK_FORM_POSTS_PER_HOUR = env_int("CALLBACK_FORM_POSTS_PER_HOUR", 20)
CALLBACK_FORM_POSTS_PER_TOKEN_PER_HOUR = env_int("CALLBACK_FORM_POSTS_PER_TOKEN_PER_HOUR", 5)

# --- Analytics --------------------------------------------------------------------

# How often beat rolls new events, sends, conversions and callbacks into the daily tables.
ANALYTICS_ROLLUP_INTERVAL_SECONDS = env_int("ANALYTICS_ROLLUP_INTERVAL_SECONDS", 60)
# Raw message events older than this are pruned once rolled up; their days' rollups are kept as they are.
EVENT_RETENTION_DAYS = env_int("EVENT_RETENTION_DAYS", 400)
# A conversion without a campaign or message goes to the contact's last clicked (else opened) message
# within this many days.
CONVERSION_ATTRIBUTION_DAYS = env_int("CONVERSION_ATTRIBUTION_DAYS", 7)

# --- Outgoing webhooks ---------------------------------------------------------------

# Endpoints resolving to private, loopback, link-local or reserved addresses are refused (SSRF)
# unless this is on (development, or receivers on the same private network).
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)
# Seconds one POST may take; deliveries claimed per batch and POSTed at once; the run's time budget.
WEBHOOKS_TIMEOUT_SECONDS = env_int("WEBHOOKS_TIMEOUT_SECONDS", 10)
WEBHOOKS_DELIVERY_BATCH = env_int("WEBHOOKS_DELIVERY_BATCH", 50)
WEBHOOKS_CONCURRENCY = env_int("WEBHOOKS_CONCURRENCY", 10)
WEBHOOKS_DELIVER_SECONDS = env_int("WEBHOOKS_DELIVER_SECONDS", 45)
# A claimed delivery is sent again after this long when its worker died before recording the answer.
WEBHOOKS_LEASE_SECONDS = env_int("WEBHOOKS_LEASE_SECONDS", 300)
if WEBHOOKS_LEASE_SECONDS <= WEBHOOKS_TIMEOUT_SECONDS * 2:
    raise ImproperlyConfigured("WEBHOOKS_LEASE_SECONDS must be well above WEBHOOKS_TIMEOUT_SECONDS")
# How often beat turns new events into deliveries and delivers, and the fan-out's time budget.
WEBHOOKS_FANOUT_INTERVAL_SECONDS = env_int("WEBHOOKS_FANOUT_INTERVAL_SECONDS", 10)
WEBHOOKS_DELIVER_INTERVAL_SECONDS = env_int("WEBHOOKS_DELIVER_INTERVAL_SECONDS", 5)
WEBHOOKS_FANOUT_SECONDS = env_int("WEBHOOKS_FANOUT_SECONDS", 30)
# An endpoint is disabled once every attempt failed for this many hours (0: never), or after this
# many failed attempts in a row (0, the default: no count limit).
WEBHOOKS_DISABLE_AFTER_HOURS = env_int("WEBHOOKS_DISABLE_AFTER_HOURS", 24)
WEBHOOKS_DISABLE_AFTER_FAILURES = env_int("WEBHOOKS_DISABLE_AFTER_FAILURES", 0)

# --- Email ------------------------------------------------------------------

ANYMAIL_ESP_NAME = env_str("ANYMAIL_ESP_NAME")
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    f"anymail.backends.{ANYMAIL_ESP_NAME}.EmailBackend"
    if ANYMAIL_ESP_NAME
    else "django.core.mail.backends.filebased.EmailBackend",
)
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Campaign Central <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Every ANYMAIL_<KEY> variable (provider keys such as ANYMAIL_POSTMARK_SERVER_TOKEN or
# ANYMAIL_MAILGUN_WEBHOOK_SIGNING_KEY) goes into Anymail's settings as <KEY>.
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value
    for key, value in os.environ.items()
    if key.startswith("ANYMAIL_") and key not in {"ANYMAIL_ESP_NAME", "ANYMAIL_WEBHOOK_SECRET"}
}
ANYMAIL_WEBHOOK_SECRET = env_basic_auth("ANYMAIL_WEBHOOK_SECRET")
if ANYMAIL_WEBHOOK_SECRET:
    ANYMAIL["WEBHOOK_SECRET"] = ANYMAIL_WEBHOOK_SECRET

# --- SMS and WhatsApp ---------------------------------------------------------------
# Channel backends (campaigns.channels). "file" writes one JSON line per message under the
# *_FILE_PATH directory (the embedded default), "console" prints it, "twilio" / "cloud" send for
# real. A provider backend without its credentials counts as no backend: campaigns and sequences
# of that channel are refused at launch.

SMS_BACKEND = env_str("SMS_BACKEND", "file").strip().lower()
if SMS_BACKEND not in {"twilio", "file", "console"}:
    raise ImproperlyConfigured(f"SMS_BACKEND must be twilio, file or console, got {SMS_BACKEND!r}")
SMS_FILE_PATH = env_str("SMS_FILE_PATH", str(VAR_DIR / "sms"))
TWILIO_ACCOUNT_SID = env_str("TWILIO_ACCOUNT_SID")
TWILIO_AUTH_TOKEN = env_str("TWILIO_AUTH_TOKEN")
TWILIO_FROM = env_str("TWILIO_FROM")
TWILIO_MESSAGING_SERVICE_SID = env_str("TWILIO_MESSAGING_SERVICE_SID")
WHATSAPP_BACKEND = env_str("WHATSAPP_BACKEND", "file").strip().lower()
if WHATSAPP_BACKEND not in {"cloud", "file", "console"}:
    raise ImproperlyConfigured(f"WHATSAPP_BACKEND must be cloud, file or console, got {WHATSAPP_BACKEND!r}")
WHATSAPP_FILE_PATH = env_str("WHATSAPP_FILE_PATH", str(VAR_DIR / "whatsapp"))
WHATSAPP_TOKEN = env_str("WHATSAPP_TOKEN")
WHATSAPP_PHONE_NUMBER_ID = env_str("WHATSAPP_PHONE_NUMBER_ID")
WHATSAPP_APP_SECRET = env_str("WHATSAPP_APP_SECRET")
WHATSAPP_VERIFY_TOKEN = env_str("WHATSAPP_VERIFY_TOKEN")
WHATSAPP_API_VERSION = env_str("WHATSAPP_API_VERSION", "v23.0")
# Seconds one provider HTTP call may take before it counts as a temporary failure.
CHANNEL_HTTP_TIMEOUT = env_int("CHANNEL_HTTP_TIMEOUT", 20)

# --- Security (when DEBUG is off) ---------------------------------------------

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("USE_X_FORWARDED_PROTO", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    # Session and CSRF cookies travel over TLS only. Turning that off without DEBUG is refused
    # rather than obeyed: plain http is for development (DEBUG=1), and browsers accept secure
    # cookies from http://localhost anyway.
    for _cookie_setting in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        if not env_bool(_cookie_setting, True):
            raise ImproperlyConfigured(f"{_cookie_setting} cannot be turned off while DEBUG is off")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Preloading is hard to undo, so it is the operator's explicit choice.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    # TLS is usually terminated by the proxy in front; turn this on when it is not.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
    SECURE_REDIRECT_EXEMPT = [r"^health$"]

# --- Logging ----------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
# Workers leave out the INFO lines of beat's periodic tasks (sent, received, succeeded) unless this is on.
LOG_PERIODIC_TASKS = env_bool("LOG_PERIODIC_TASKS", False)
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logging.RequestIDFilter"}},
    "formatters": {
        "json": {"()": "config.logging.JSONFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": LOG_LEVEL},
    },
}
