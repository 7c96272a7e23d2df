"""Job and task functions for apps_check.py: imported by the rq worker and the Celery worker,
which run in their own processes (so they must live in an importable module).

The Celery app reads its broker and result-backend URL from APPS_REDIS_URL.
"""

import os


def add(a, b):
    """An rq job: returns a + b."""
    return a + b


def boom(msg):
    """An rq job that fails."""
    raise ValueError(msg)


celery_app = None
if os.environ.get("APPS_REDIS_URL"):
    from celery import Celery

    celery_app = Celery(
        "apps_tasks",
        broker=os.environ["APPS_REDIS_URL"],
        backend=os.environ["APPS_REDIS_URL"],
    )
    celery_app.conf.update(
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_default_queue=os.environ.get("APPS_CELERY_QUEUE", "celery"),
    )

    @celery_app.task(name="apps.mul")
    def mul(a, b):
        return a * b

    @celery_app.task(name="apps.fail")
    def fail(msg):
        raise RuntimeError(msg)
