# kaizen's warm Python sandbox server. Runs inside bubblewrap (no network, read-only system,
# private size-capped /tmp, unprivileged uid, rlimits set by the host). Reads one JSON request
# per line on stdin: {"code": str, "timeout": seconds, "max_output": bytes}; answers one JSON
# line on the original stdout. Each request runs in a fresh fork (own session), so no call can
# change the state the next one starts from; after each call every other process in the
# sandbox is killed and /tmp is wiped.
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback

OUT = os.dup(1)
os.dup2(os.open("/dev/null", os.O_RDWR), 1)


def others(me):
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]


def cleanup(me):
    """Kills every other process in the sandbox (background jobs, escaped sessions) and wipes
    /tmp, so the next call starts from the same state."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        pids = others(me)
        if not pids:
            break
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            pass
        time.sleep(0.001)
    for name in os.listdir("/tmp"):
        path = os.path.join("/tmp", name)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def run(req):
    code, timeout, cap = req["code"], float(req["timeout"]), int(req["max_output"])
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
            os.dup2(w_out, 1)
            os.dup2(w_err, 2)
            for fd in (r_out, r_err, w_out, w_err, OUT):
                os.close(fd)
            os.chdir("/tmp")
            sys.stdin = open(0)
            sys.stdout = os.fdopen(1, "w", buffering=1)
            sys.stderr = os.fdopen(2, "w", buffering=1)
            rc = 0
            try:
                exec(compile(code, "<tool>", "exec"), {"__name__": "__main__"})
            except SystemExit as e:
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
                rc = 1
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            rc = 1
        os._exit(rc)
    os.close(w_out)
    os.close(w_err)
    bufs = {r_out: bytearray(), r_err: bytearray()}
    open_fds = [r_out, r_err]
    deadline = time.monotonic() + timeout
    timed_out = truncated = False
    while open_fds:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(open_fds, [], [], left)
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.remove(fd)
            else:
                bufs[fd] += chunk
        if len(bufs[r_out]) + len(bufs[r_err]) > cap:
            truncated = True
            break
    if open_fds:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    for fd in (r_out, r_err):
        os.close(fd)
    resp = {
        "stdout": bytes(bufs[r_out][:cap]).decode("utf-8", "replace"),
        "stderr": bytes(bufs[r_err][: max(0, cap - len(bufs[r_out]))]).decode("utf-8", "replace"),
        "exit_code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "timed_out": timed_out,
        "truncated": truncated,
    }
    cleanup(os.getpid())
    return resp


for line in sys.stdin:
    try:
        resp = run(json.loads(line))
    except Exception as e:  # a malformed request: answer, keep serving
        resp = {"stdout": "", "stderr": f"sandbox server error: {e}", "exit_code": None, "signal": None,
                "timed_out": False, "truncated": False}
    os.write(OUT, (json.dumps(resp) + "\n").encode())
