"""Load from wrk against 127.0.0.1: throughput and latency percentiles, with every response checked.

Each run replays a list of prepared raw HTTP requests (so that every payment POST goes to its own
payment, exactly once), for a fixed number of seconds. A Lua hook counts responses whose status is
not the expected one; the figures are reported next to that count.
"""
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

from bench.data import USER_AGENT

ACCEPT_ENCODING = "gzip, deflate, br, zstd"
THREADS = 2
SEP = "\x1e"

LUA = r"""
local f = assert(io.open(os.getenv("BENCH_REQUESTS"), "rb"))
local data = f:read("*a")
f:close()
local reqs = {}
local start = 1
while true do
  local i = string.find(data, "\30", start, true)
  if not i then break end
  reqs[#reqs + 1] = string.sub(data, start, i - 1)
  start = i + 1
end
local nthreads = tonumber(os.getenv("BENCH_THREADS"))
local expected = tonumber(os.getenv("BENCH_STATUS"))
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
local n = 0
wrapped = 0
bad = 0
function request()
  local idx = tid + n * nthreads
  n = n + 1
  if idx >= #reqs then wrapped = 1 end
  return reqs[(idx % #reqs) + 1]
end
function response(status, headers, body)
  if status ~= expected then bad = bad + 1 end
end
function done(summary, latency, requests)
  local w, b = 0, 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wrapped") or 0)
    b = b + (t:get("bad") or 0)
  end
  io.write(string.format("BENCH_WRAPPED %d\nBENCH_BAD %d\n", w, b))
end
"""


def wrk_path():
    """wrk, or None when it is not installed (`make bench` installs it on Debian)."""
    return shutil.which("wrk")


def raw(method, path, headers=None, body=""):
    """One HTTP/1.1 request as wrk sends it."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"User-Agent: {USER_AGENT}",
             f"Accept-Encoding: {ACCEPT_ENCODING}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if method == "POST":
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body.encode())}"]
    return "\r\n".join(lines) + "\r\n\r\n" + body


def _ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run(url, requests, connections, seconds, expected_status=200):
    """Replay ``requests`` (raw strings) for ``seconds`` over ``connections``; returns the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        script = pathlib.Path(tmp) / "replay.lua"
        script.write_text(LUA)
        reqfile = pathlib.Path(tmp) / "requests"
        reqfile.write_bytes("".join(r + SEP for r in requests).encode())
        env = {**os.environ, "BENCH_REQUESTS": str(reqfile), "BENCH_THREADS": str(THREADS),
               "BENCH_STATUS": str(expected_status)}
        cmd = [wrk_path(), f"-t{THREADS}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "--latency",
               "-s", str(script), url]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 30).stdout
    lat = dict((p, _ms(v, u)) for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": lat.get("50"), "p99": lat.get("99"),
        "bad": int(re.search(r"BENCH_BAD (\d+)", out).group(1)),
        "wrapped": int(re.search(r"BENCH_WRAPPED (\d+)", out).group(1)) > 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "connections": connections, "seconds": seconds,
    }
