"""The Celery app the tests' workers run (`celery -A tests.celery._app worker`).

Configured from the environment the test gives the worker: `CELERY_TEST_REDIS` (a
redis:// URL without a database: broker on /0, results on /1, the ledger and the shared
rate limits on /2), `CELERY_TEST_SCALE` (the Emulator's clock) and
`CELERY_TEST_VISIBILITY` (seconds before an unacknowledged task is delivered again);
the client's base URL, key and organization come from `CODEGEN_*` as in production.
"""

from __future__ import annotations

import os

from celery import Celery

from codegen_sync import CreatePolicy, PollPolicy, RateLimits
from codegen_sync.celery import install

REDIS = os.environ.get("CELERY_TEST_REDIS", "redis://127.0.0.1:6379")
SCALE = float(os.environ.get("CELERY_TEST_SCALE", "0.01"))
VISIBILITY = float(os.environ.get("CELERY_TEST_VISIBILITY", "4"))

app = Celery("codegen_tests", broker=f"{REDIS}/0", backend=f"{REDIS}/1")
app.conf.update(
    # A task a dead worker held is delivered again VISIBILITY seconds after it was taken,
    # found by a sweep every second (kombu's default sweeps about every 100 s).
    broker_transport_options={
        "visibility_timeout": VISIBILITY,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
    result_backend_transport_options={"visibility_timeout": VISIBILITY},
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
install(
    app,
    rate_limits=RateLimits.documented().scaled(SCALE).shared(f"{REDIS}/2"),
    poll_policy=PollPolicy().scaled(SCALE),
    create_policy=CreatePolicy().scaled(SCALE),
    timeout=5.0,
)
