# kaizen's warm Python sandbox server. Runs inside bubblewrap as the sandbox's pid 1 (no
# network, read-only system, private size-capped /tmp, unprivileged uid, rlimits and a cgroup
# set by the host). Reads one JSON request per line on stdin:
# {"code": str, "timeout": seconds, "max_output": bytes, "nonce": str}; answers one frame on
# the original stdout: the header line "kaizen-sandbox NONCE LENGTH" and LENGTH bytes of JSON.
# Each request runs in a fresh fork (own session), so no call can change the state the next one
# starts from; after each call every other process in the sandbox is killed and /tmp is wiped.
#
# The code it runs must not reach the server: the server is pid 1 of the sandbox's pid
# namespace, so the kernel drops every signal sent to it from inside (SIGKILL and SIGSTOP
# included), and it is not dumpable, so the code (same uid, no capabilities) can neither
# ptrace it nor open its /proc entries (its pipes in /proc/1/fd among them). What the code can
# still do to a process of its own uid is lower its rlimits (prlimit); the server checks its
# own limits after every call and reports itself damaged, and the host replaces it.
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import sys
import time
import traceback

PR_SET_DUMPABLE = 4
if os.getpid() != 1 or ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
    # Fail closed: unprotected, the code could forge this server's answers.
    sys.stderr.write("the sandbox server cannot protect itself (not pid 1, or prctl failed)\n")
    sys.exit(70)

OUT = os.dup(1)
_null = os.open("/dev/null", os.O_RDWR)
os.dup2(_null, 1)
os.close(_null)

# SIGINT is the one signal Python handles by default, so the kernel would deliver it to pid 1.
signal.signal(signal.SIGINT, signal.SIG_IGN)


def settings():
    """Everything a process of the same uid can change in this server and every later fork
    inherits: every rlimit, the nice value, the CPU affinity."""
    out = {n: resource.getrlimit(getattr(resource, n)) for n in dir(resource) if n.startswith("RLIMIT_")}
    out["nice"] = os.getpriority(os.PRIO_PROCESS, 0)
    out["affinity"] = sorted(os.sched_getaffinity(0))
    return out


START = settings()


def damage():
    """What a call changed in the server itself (limits lowered by prlimit, its priority, its
    CPU affinity), or None."""
    now = settings()
    changed = [n for n in START if now.get(n) != START[n]]
    return f"the call changed the server's {', '.join(changed)}" if changed else None


def others(me):
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]


def cleanup(me):
    """Kills every other process in the sandbox (background jobs, escaped sessions) and wipes
    /tmp, so the next call starts from the same state. Processes that outlive 2 s raise: the
    server then reports itself damaged and is replaced."""
    deadline = time.monotonic() + 2.0
    while True:
        pids = others(me)
        if not pids:
            break
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{len(pids)} processes outlived the call")
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
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
            os.dup2(w_out, 1)
            os.dup2(w_err, 2)
            # Only 0, 1 and 2 cross into the code: not the server's answer pipe, nor anything else.
            os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
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
    try:
        cleanup(os.getpid())
    except Exception as e:  # the call lowered our limits, say: report it, the host replaces us
        resp["cleanup_failed"] = str(e)
    return resp


def answer(nonce, resp):
    failed = resp.pop("cleanup_failed", None)
    resp["damage"] = damage() or (f"cleaning up after the call failed: {failed}" if failed else None)
    body = json.dumps(resp).encode()
    frame = f"kaizen-sandbox {nonce} {len(body)}\n".encode() + body
    while frame:
        frame = frame[os.write(OUT, frame):]


for line in sys.stdin:
    nonce = "-"
    try:
        req = json.loads(line)
        nonce = str(req["nonce"])
        resp = run(req)
    except Exception as e:  # a malformed request or a failed fork: answer, keep serving
        resp = {"stdout": "", "stderr": f"sandbox server error: {e}", "exit_code": None, "signal": None,
                "timed_out": False, "truncated": False}
    answer(nonce, resp)
