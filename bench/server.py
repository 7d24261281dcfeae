"""Start gunicorn on 127.0.0.1 for a benchmark run, and always stop it again."""
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKERS = 2
THREADS = 4  # as `make run` serves


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(target, env=None, workers=WORKERS, threads=THREADS, log=None, extra_args=()):
    """Serve ``target`` (e.g. 'app:create_app()') with gunicorn; yields its base URL."""
    port = free_port()
    cmd = [str(pathlib.Path(sys.executable).parent / "gunicorn"), "--workers", str(workers), "--threads",
           str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning", *extra_args, target]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log or subprocess.DEVNULL,
                            stderr=log or subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/login" if "create_app" in target else url + "/", timeout=2)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    if log is not None:
                        log.flush()
                        sys.stderr.write(open(log.name).read()[-4000:])
                    raise RuntimeError(f"gunicorn did not start: {' '.join(cmd)}")
                time.sleep(0.2)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
