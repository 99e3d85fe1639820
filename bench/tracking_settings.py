"""Settings for the tracking benchmark's gunicorn: the project's, with tracking mounted as it is
meant to be (bench/tracking_urls.py) and the buffer mode from TRACKING_BUFFER."""

import os

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.tracking_urls"
TRACKING_BUFFER = os.environ.get("TRACKING_BUFFER", "")
