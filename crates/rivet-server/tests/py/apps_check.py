"""Everyday Python applications against a Redis-compatible server: `apps_check.py PORT SCENARIO`.

Run by tests/apps.rs against Debian's redis-server and against rivet-server with the same
scenario, so that a failure is the server's and not the scenario's. Each scenario prints one
`ok SCENARIO: ...` line and exits 0, or prints a traceback and exits 1.

Scenarios (each uses the libraries' public APIs the way an application does):
- rq: an `rq worker --burst` process runs enqueued jobs; results and a failure come back.
- celery: a Celery worker (Redis as broker and result backend) runs tasks; results and a
  failure come back to the caller.
- limits: the `limits` library's Redis storage allows N hits in a window and refuses the N+1th,
  for the moving-window (Lua), fixed-window and sliding-window-counter strategies.
- lock: redis-py's `Lock` excludes a second holder, expires after its timeout, and refuses a
  release by a holder that lost it.
- redis_lock: python-redis-lock hands a released lock to a client blocked waiting for it.
"""

import os
import subprocess
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def bin_path(name):
    """A console script installed beside this interpreter (the venv's bin)."""
    return os.path.join(os.path.dirname(sys.executable), name)


def worker_env(url, **extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = HERE + os.pathsep + env.get("PYTHONPATH", "")
    env["APPS_REDIS_URL"] = url
    env.update(extra)
    return env


def scenario_rq(port):
    from redis import Redis
    from rq import Queue

    import apps_tasks

    url = f"redis://127.0.0.1:{port}/0"
    conn = Redis(port=port)
    qname = "apps-" + uuid.uuid4().hex[:8]
    q = Queue(qname, connection=conn)
    jobs = [q.enqueue(apps_tasks.add, i, 2 * i) for i in range(8)]
    bad = q.enqueue(apps_tasks.boom, "expected failure")
    assert q.count == 9, q.count
    out = subprocess.run(
        [bin_path("rq"), "worker", "--burst", "--url", url, qname],
        env=worker_env(url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise AssertionError(f"rq worker exited {out.returncode}:\n{out.stdout}\n{out.stderr}")
    for i, job in enumerate(jobs):
        job.refresh()
        assert job.get_status() == "finished", (i, job.get_status())
        assert job.return_value() == 3 * i, (i, job.return_value())
        result = job.latest_result()
        assert result is not None and result.type == result.Type.SUCCESSFUL, result
    bad.refresh()
    assert bad.get_status() == "failed", bad.get_status()
    assert "expected failure" in (bad.latest_result().exc_string or ""), bad.latest_result()
    assert q.count == 0, q.count
    return f"{len(jobs)} jobs ran, results back, 1 failure recorded"


def scenario_celery(port):
    url = f"redis://127.0.0.1:{port}/0"
    qname = "apps-" + uuid.uuid4().hex[:8]
    os.environ["APPS_REDIS_URL"] = url
    os.environ["APPS_CELERY_QUEUE"] = qname
    import apps_tasks

    worker = subprocess.Popen(
        [
            bin_path("celery"),
            "-A",
            "apps_tasks.celery_app",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            "-Q",
            qname,
            "-n",
            f"{qname}@localhost",
        ],
        env=worker_env(url, APPS_CELERY_QUEUE=qname),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        results = [apps_tasks.mul.delay(i, 7) for i in range(6)]
        got = [r.get(timeout=60) for r in results]
        assert got == [7 * i for i in range(6)], got
        bad = apps_tasks.fail.delay("expected failure")
        try:
            bad.get(timeout=60)
        except RuntimeError as e:
            assert "expected failure" in str(e), e
        else:
            raise AssertionError("a failing task returned a result")
        assert bad.state == "FAILURE", bad.state
    finally:
        worker.terminate()
        try:
            log, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            log, _ = worker.communicate()
    if worker.returncode not in (0, -15):
        raise AssertionError(f"celery worker exited {worker.returncode}:\n{log}")
    return f"{len(results)} tasks ran, results back, 1 failure raised"


def scenario_limits(port):
    from limits import parse, storage, strategies

    store = storage.RedisStorage(f"redis://127.0.0.1:{port}")
    assert store.check(), "storage check failed"
    item = parse("5/2 seconds")
    done = []
    for strategy in (
        strategies.MovingWindowRateLimiter,
        strategies.FixedWindowRateLimiter,
        strategies.SlidingWindowCounterRateLimiter,
    ):
        limiter = strategy(store)
        who = uuid.uuid4().hex
        hits = [limiter.hit(item, "apps", who) for _ in range(6)]
        assert hits == [True] * 5 + [False], (strategy.__name__, hits)
        assert not limiter.test(item, "apps", who), strategy.__name__
        other = [limiter.hit(item, "apps", who + "-other") for _ in range(2)]
        assert other == [True, True], (strategy.__name__, other)
        stats = limiter.get_window_stats(item, "apps", who)
        assert stats.remaining == 0, (strategy.__name__, stats)
        done.append(strategy.__name__)
    # After the window (sliding-window-counter needs two windows to forget completely).
    time.sleep(4.2)
    for strategy in (strategies.MovingWindowRateLimiter, strategies.FixedWindowRateLimiter):
        limiter = strategy(store)
        who = uuid.uuid4().hex
        assert all(limiter.hit(item, "apps", who) for _ in range(5))
        assert not limiter.hit(item, "apps", who)
        time.sleep(2.2)
        assert limiter.hit(item, "apps", who), (strategy.__name__, "window did not pass")
    return "the 6th hit in a 5/2s window refused by " + ", ".join(done)


def scenario_lock(port):
    from redis import Redis
    from redis.exceptions import LockNotOwnedError

    a = Redis(port=port)
    b = Redis(port=port)
    name = "apps-lock-" + uuid.uuid4().hex[:8]
    la = a.lock(name, timeout=1.0)
    lb = b.lock(name, timeout=5.0)
    assert la.acquire(blocking=False)
    assert la.owned() and la.locked()
    assert not lb.acquire(blocking=False), "second holder got the lock"
    t0 = time.monotonic()
    assert not lb.acquire(blocking=True, blocking_timeout=0.3), "second holder got the lock"
    assert time.monotonic() - t0 >= 0.15  # redis-py stops before a sleep would overrun
    assert la.extend(0.5)  # now about 1.5 s to live
    assert 0 < a.pttl(name) <= 1500, a.pttl(name)
    # la's lock expires; lb waits for it.
    assert lb.acquire(blocking=True, blocking_timeout=5.0), "lock never expired"
    assert lb.owned() and not la.owned()
    try:
        la.release()
    except LockNotOwnedError:
        pass
    else:
        raise AssertionError("released a lock owned by another client")
    lb.release()
    assert not lb.locked()
    with a.lock(name, timeout=5, blocking_timeout=1):
        assert b.get(name) is not None
    assert b.get(name) is None
    return "second holder excluded, expiry passed the lock on, foreign release refused"


def scenario_redis_lock(port):
    import redis_lock
    from redis import Redis

    a = Redis(port=port)
    b = Redis(port=port)
    name = "apps-" + uuid.uuid4().hex[:8]
    la = redis_lock.Lock(a, name, expire=30)
    assert la.acquire(blocking=False)
    assert not redis_lock.Lock(b, name, expire=30).acquire(blocking=False)
    waited = []

    def waiter():
        lb = redis_lock.Lock(b, name, expire=30)
        t0 = time.monotonic()
        if lb.acquire(blocking=True, timeout=20):
            waited.append(time.monotonic() - t0)
            lb.release()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.7)
    assert not waited, "waiter got a held lock"
    la.release()
    t.join(25)
    assert waited, "waiter never got the released lock"
    assert 0.5 <= waited[0] < 5.0, waited
    # Released by the waiter too: a third client gets it at once.
    assert redis_lock.Lock(a, name, expire=30).acquire(blocking=False)
    return f"lock handed to the waiting client after {waited[0]:.2f} s"


SCENARIOS = {
    "rq": scenario_rq,
    "celery": scenario_celery,
    "limits": scenario_limits,
    "lock": scenario_lock,
    "redis_lock": scenario_redis_lock,
}


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in SCENARIOS:
        sys.exit(f"usage: apps_check.py PORT {{{'|'.join(SCENARIOS)}}}")
    port = int(sys.argv[1])
    what = SCENARIOS[sys.argv[2]](port)
    print(f"ok {sys.argv[2]}: {what}", flush=True)


if __name__ == "__main__":
    main()
