"""CPU time per request, in process: what a page costs the server, free of other work on the machine.

Wall-clock load figures move with everything else the machine runs; the CPU time a request's own
thread uses hardly does. Two cores divided by it bound the throughput gunicorn can reach.
"""
import statistics
import time

from bench.data import CARD, USER_AGENT

RUNS = 200
MAX_SECONDS = 10


def per_request(send, runs=RUNS):
    """Median (CPU ms, wall ms) of ``send(i)`` over ``runs`` calls, bounded by MAX_SECONDS."""
    send(0)
    cpu, wall = [], []
    deadline = time.monotonic() + MAX_SECONDS
    for i in range(1, runs + 1):
        c, w = time.thread_time(), time.perf_counter()
        send(i)
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - w) * 1000)
        if time.monotonic() > deadline:
            break
    return statistics.median(cpu), statistics.median(wall)


def run(app, info):
    """{measure: (cpu ms, wall ms)} for the bare Flask page, Home, a fragment and the sandbox Pay POST."""
    from bench.hello import app as hello

    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate, br, zstd"}
    out = {}
    h = hello.test_client()
    out["Bare Flask \"hello\""] = per_request(lambda i: h.get("/", headers=headers))
    reader = app.test_client()
    reader.set_cookie("session", info["session"]["cookie"].split("=", 1)[1])

    def get(url, htmx=False):
        def send(i):
            r = reader.get(url, headers={**headers, **({"HX-Request": "true"} if htmx else {})})
            assert r.status_code == 200, (url, r.status_code)
        return send

    out["Home page (full)"] = per_request(get("/"))
    out["Invoices tab (htmx fragment)"] = per_request(get("/invoices", htmx=True))
    payer = app.test_client()
    sb = info["sandbox"]
    payer.set_cookie("session", sb["cookie"].split("=", 1)[1])
    pool = info["pools"]["cpu"]

    def pay(i):
        path, query = pool[i % len(pool)]
        r = payer.post(path, data=f"{query}&{CARD}&csrf_token={sb['csrf']}",
                       headers={**headers, "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.status_code

    out["Sandbox Pay POST (card)"] = per_request(pay, runs=len(pool) - 1)
    return out
