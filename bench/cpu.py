"""CPU time per request, in process: what a page costs the server, free of other work on the machine.

Wall-clock load figures move with everything else the machine runs; the CPU time a request's own
thread uses hardly does. Two cores divided by it bound the throughput gunicorn can reach.

``python -m bench.cpu`` runs this alone on a small throw-away database and prints each page's CPU per
request as a ratio to a bare Flask page measured in the same run, and the SQL statements each page runs
(``--profile PAGE`` prints where that page's time goes).
"""
import statistics
import time

from bench.data import CARD, USER_AGENT

RUNS = 200
MAX_SECONDS = 10
HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate, br, zstd"}


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


def senders(app, info):
    """{measure: send(i)} for the bare Flask page, Home, a fragment, the login page and the sandbox Pay POST."""
    from bench.hello import app as hello

    out = {}
    h = hello.test_client()
    out["Bare Flask \"hello\""] = lambda i: h.get("/", headers=HEADERS)
    reader = app.test_client()
    reader.set_cookie("session", info["session"]["cookie"].split("=", 1)[1])

    def get(client, url, htmx=False):
        def send(i):
            r = client.get(url, headers={**HEADERS, **({"HX-Request": "true"} if htmx else {})})
            assert r.status_code == 200, (url, r.status_code)
        return send

    out["Home page (full)"] = get(reader, "/")
    out["Invoices tab (htmx fragment)"] = get(reader, "/invoices", htmx=True)
    visitor = app.test_client(use_cookies=False)  # a first visit: no cookie yet, as most login page loads are
    out["Login page (first visit)"] = get(visitor, "/login")
    returning = app.test_client()  # a visitor who has the page's session cookie (its CSRF secret) already
    returning.get("/login", headers=HEADERS)
    out["Login page (returning visitor)"] = get(returning, "/login")
    payer = app.test_client()
    sb = info["sandbox"]
    payer.set_cookie("session", sb["cookie"].split("=", 1)[1])
    pool = info["pools"]["cpu"]

    def pay(i):
        path, query = pool[i % len(pool)]
        r = payer.post(path, data=f"{query}&{CARD}&csrf_token={sb['csrf']}",
                       headers={**HEADERS, "Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 200, r.status_code

    out["Sandbox Pay POST (card)"] = (pay, len(pool) - 1)
    return out


def run(app, info, runs=RUNS):
    """{measure: (cpu ms, wall ms)} for the bare Flask page, Home, a fragment, the login page and the Pay POST.

    The pages take turns, one request each a round, so that every page sees the same machine noise and the
    ratios between them hold even when other work slows the whole run down.
    """
    sends = {name: (send if isinstance(send, tuple) else (send, runs)) for name, send in senders(app, info).items()}
    rounds = min(runs, *(n for _send, n in sends.values()))
    for send, _n in sends.values():
        send(0)
    cpu = {name: [] for name in sends}
    wall = {name: [] for name in sends}
    deadline = time.monotonic() + MAX_SECONDS * len(sends)
    for i in range(1, rounds + 1):
        for name, (send, _n) in sends.items():
            c, w = time.thread_time(), time.perf_counter()
            send(i)
            cpu[name].append((time.thread_time() - c) * 1000)
            wall[name].append((time.perf_counter() - w) * 1000)
        if time.monotonic() > deadline:
            break
    return {name: (statistics.median(cpu[name]), statistics.median(wall[name])) for name in sends}


def queries(app, info):
    """{measure: SQL statements one request runs}, counted at the database handle."""
    from db import database

    counts = {}
    real = type(database.obj).execute_sql

    def counting(self, sql, params=None, *args, **kwargs):
        counts["n"] = counts.get("n", 0) + 1
        return real(self, sql, params, *args, **kwargs)

    out = {}
    type(database.obj).execute_sql = counting
    try:
        for name, send in senders(app, info).items():
            send = send[0] if isinstance(send, tuple) else send
            send(0)
            counts["n"] = 0
            send(1)
            out[name] = counts["n"]
    finally:
        type(database.obj).execute_sql = real
    return out


def main(argv=None):
    import argparse
    import os
    import secrets
    import shutil
    import tempfile

    from bench import data

    parser = argparse.ArgumentParser(prog="python -m bench.cpu", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="profile this page (a measure's first word: Home, Invoices, Login, …)")
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="portal-cpu-")
    try:
        app, info = data.build(f"sqlite:///{tmp}/cpu.sqlite3", secrets.token_hex(32), "whsec_" + secrets.token_hex(16),
                               {"cpu": RUNS + 1}, growth=False)
        load1, _, _ = os.getloadavg()
        if args.profile:
            import cProfile
            import pstats

            name, send = next((k, v) for k, v in senders(app, info).items() if k.startswith(args.profile))
            send = send[0] if isinstance(send, tuple) else send
            send(0)
            prof = cProfile.Profile()
            prof.enable()
            for i in range(1, RUNS + 1):
                send(i)
            prof.disable()
            print(name)
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
            return
        counts = queries(app, info)
        figures = run(app, info)
        floor = figures["Bare Flask \"hello\""][0]
        print(f"load average at start {load1:.2f}")
        print(f"| page | CPU per request | × bare Flask | SQL statements |\n|---|---|---|---|")
        for name, (cpu_ms, _wall) in figures.items():
            print(f"| {name} | {cpu_ms:.2f} ms | {cpu_ms / floor:.1f}× | {counts[name]} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
