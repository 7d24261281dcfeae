"""Server throughput on SQLite and PostgreSQL, 2 and 4 workers, as ratios to a bare Flask page in the same run.

    .venv/bin/python -m bench.scale [--seconds 5] [--no-postgres]

For each database and worker count it starts gunicorn (N workers x 4 threads, as `make serve` does), then
runs wrk at 10 and 50 connections against Home, the Invoices htmx fragment and the login page, and the bare
Flask "hello" app under the same gunicorn settings just before, so every figure is a ratio to the floor of
that moment (the machine's noise moves both). PostgreSQL runs twice: with the connection pool
(DATABASE_POOL=8, the default) and without it (DATABASE_POOL=0: a new connection a request).

wrk keeps its connections alive, so all of them can land on one worker and leave another idle: each run
reads the workers' CPU time from /proc, and a run where one worker did less than a third of the busiest
worker's work is flagged "uneven" (its figure understates the server).
"""
import argparse
import contextlib
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

from bench import data, load
from bench.server import gunicorn

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
PAGES = ("Home page (full)", "Invoices tab (htmx fragment)", "Login page")


@contextlib.contextmanager
def postgres_server():
    """A throw-away PostgreSQL server on 127.0.0.1 (as the tests start one); yields its base URL."""
    top = pathlib.Path(tempfile.mkdtemp(prefix="portal-bench-pg-"))
    datadir = top / "data"
    datadir.mkdir()
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if os.geteuid() == 0:
        shutil.chown(top, "postgres")
        shutil.chown(datadir, "postgres")
    port = __import__("bench.server", fromlist=["free_port"]).free_port()
    subprocess.run(as_pg + [f"{PGBIN}/initdb", "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run(as_pg + [f"{PGBIN}/pg_ctl", "-D", str(datadir), "-l", str(datadir / "log"), "-w", "start", "-o",
                            f"-c listen_addresses=127.0.0.1 -p {port} -k {datadir} -c max_connections=200"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(as_pg + [f"{PGBIN}/pg_ctl", "-D", str(datadir), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(top, ignore_errors=True)


def _create_db(server, name):
    import psycopg2

    conn = psycopg2.connect(f"{server}/postgres")
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"{server}/{name}"


def _worker_cpu(master_pid):
    """{pid: CPU seconds} of gunicorn's worker processes (children of the master)."""
    out = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master_pid:
            out[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _measure(url, master_pid, request, conns, seconds):
    before = _worker_cpu(master_pid)
    result = load.run(url, [request], conns, seconds)
    after = _worker_cpu(master_pid)
    used = [after[p] - before.get(p, 0) for p in after]
    result["uneven"] = len(used) > 1 and min(used) < max(used) / 3
    return result


def _gunicorn_pid(url):
    """The gunicorn master serving ``url``: the process with its --bind whose parent lacks it."""
    bind = f"127.0.0.1:{url.rsplit(':', 1)[1]}".encode()
    procs = {}
    for cmd in pathlib.Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if bind in cmd.read_bytes():
                stat = (cmd.parent / "stat").read_text().rsplit(")", 1)[1].split()
                procs[int(cmd.parent.name)] = int(stat[1])
        except OSError:
            continue
    return next(pid for pid, parent in procs.items() if parent not in procs)


def run_config(label, db_url, secret, whsec, workers, seconds, extra_env=None):
    """Rows of (config, page, conns, figures, floor figures) for one database and worker count."""
    app, info = data.build(db_url, secret, whsec, {}, growth=False)
    cookie = {"Cookie": info["session"]["cookie"]}
    requests = {
        "Home page (full)": load.raw("GET", "/", cookie),
        "Invoices tab (htmx fragment)": load.raw("GET", "/invoices", {**cookie, "HX-Request": "true"}),
        "Login page": load.raw("GET", "/login"),
    }
    hello = load.raw("GET", "/")
    env = {"DATABASE_URL": db_url, "SECRET_KEY": secret, "SANDBOX_WEBHOOK_SECRET": whsec, "SANDBOX_WORKER": "false",
           **(extra_env or {})}
    rows = []
    for conns in (10, 50):
        with gunicorn("bench.hello:app", workers=workers) as hurl:
            floor = _measure(hurl, _gunicorn_pid(hurl), hello, conns, seconds)
        with gunicorn("app:create_app()", env=env, workers=workers) as url:
            pid = _gunicorn_pid(url)
            for page in PAGES:
                rows.append((label, page, conns, _measure(url, pid, requests[page], conns, seconds), floor))
    return rows


def _fmt(r):
    flag = " (uneven)" if r.get("uneven") else ""
    bad = f", {r['bad']} bad" if r.get("bad") else ""
    return f"{r['rps']:,.0f} req/s, p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms{bad}{flag}"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", default="2,4", help="worker counts to run (default 2,4)")
    args = parser.parse_args(argv)
    if load.wrk_path() is None:
        sys.exit("wrk is needed (`make bench` installs it)")
    seconds = max(1, min(args.seconds, 60))
    workers = [int(w) for w in args.workers.split(",")]
    secret, whsec = secrets.token_hex(32), "whsec_" + secrets.token_hex(16)
    rows = []
    tmp = tempfile.mkdtemp(prefix="portal-bench-")
    started = time.monotonic()
    try:
        for w in workers:
            rows += run_config(f"SQLite, {w} workers", f"sqlite:///{tmp}/scale-{w}.sqlite3", secret, whsec, w,
                               seconds)
        if not args.no_postgres:
            with postgres_server() as server:
                for w in workers:
                    for pool in (8, 0):
                        url = _create_db(server, f"scale_{w}_{pool}")
                        label = f"PostgreSQL, {w} workers, " + ("pool" if pool else "no pool")
                        rows += run_config(label, url, secret, whsec, w, seconds, {"DATABASE_POOL": str(pool)})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"| configuration | request | connections | figure | share of bare Flask |")
    print("|---|---|---|---|---|")
    for label, page, conns, r, floor in rows:
        print(f"| {label} | {page} | {conns} | {_fmt(r)} | {r['rps'] / floor['rps']:.2f}× "
              f"(floor {floor['rps']:,.0f} req/s) |")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; took {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
