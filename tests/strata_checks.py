"""Shared pieces of the Python black-box tests (tests/<area>/test_*.py): a failure list with check(), a
summary that exits non-zero when anything failed, and starting `strata serve` on a free port and
waiting until /health answers. Import with the tests/ directory on sys.path."""
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

failures = []
LOGS = []  # server logs: printed when something failed, removed when everything passed
_T0 = time.time()


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg, flush=True)


def start_serve(binary, args, log_prefix="strata-serve-"):
    """Starts `binary serve --port 0 ARGS`; returns (process, port, log path). Exits the test if it never gets healthy."""
    log = tempfile.NamedTemporaryFile(prefix=log_prefix, suffix=".log", delete=False)
    LOGS.append(log.name)
    p = subprocess.Popen([binary, "serve", "--port", "0", *args], stdout=subprocess.PIPE, stderr=log, text=True,
                         # Spinning OpenMP workers starve the HTTP threads on a loaded 2-core box.
                         env={**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "passive")})
    line = p.stdout.readline()  # printed once listening: "... ready at http://127.0.0.1:PORT/v1"
    m = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
    if not m:
        p.kill()
        sys.exit(f"serve did not start: {line!r}\n{open(log.name, errors='replace').read()}")
    port = int(m.group(1))
    for _ in range(300):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return p, port, log.name
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    sys.exit("serve never became healthy:\n" + open(log.name, errors="replace").read())


def finish(name):
    """Prints the time taken; on failure prints the server logs and exits 1, else removes them."""
    print(f"{name}: {time.time() - _T0:.2f}s", flush=True)
    if failures:
        for path in LOGS:
            print(f"--- {path}:\n" + open(path, errors="replace").read()[-3000:])
        sys.exit(1)
    for path in LOGS:
        os.unlink(path)
    print("ok")
