"""A bounded, self-stopping load test of an OpenAI-compatible server on loopback.

CLIENTS threads each send ROUNDS requests, cycling through valid chat requests (distinct text
each) and hostile ones: an oversized n x max_tokens, a body over the size limit, malformed
JSON, and a client that sends a valid request and disconnects without reading the answer.
While it runs, the server's resident memory is sampled from /proc. Prints one JSON object:
status counts per kind, p50/p99 latency of the valid requests, peak RSS, whether the server is
still up. Standard library only.

usage: load_serve.py URL PID [--clients 40] [--rounds 5] [--max-tokens 8]
"""

import argparse
import http.client
import json
import socket
import threading
import time
import urllib.parse


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("pid", type=int)
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    host, port, path = u.hostname, u.port, u.path.rstrip("/") + "/chat/completions"

    results = []  # (kind, status or error, seconds)
    lock = threading.Lock()

    def send(kind, body, read=True):
        t = time.monotonic()
        try:
            if not read:
                # Send a whole request and leave without reading the answer.
                s = socket.create_connection((host, port), timeout=10)
                s.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode() + body
                )
                s.close()
                status = "left"
            else:
                c = http.client.HTTPConnection(host, port, timeout=a.timeout)
                c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                status = r.status
                if status != 200:
                    err = json.loads(data)["error"]  # every refusal in OpenAI's error shape
                    assert err["message"], err
                c.close()
        except (BrokenPipeError, ConnectionResetError) as e:
            # The server answered and closed while the body was still being sent: it refused
            # the body without reading it (a 413 the client could not read in time).
            status = "closed mid-upload" if kind == "huge" else f"error: {type(e).__name__}: {e}"
        except Exception as e:  # noqa: BLE001 - a failed request is a result, not a crash
            status = f"error: {type(e).__name__}: {e}"
        with lock:
            results.append((kind, status, time.monotonic() - t))

    def chat(i, extra):
        msg = {"role": "user", "content": f"Request {i}: name one thing that is {i % 97} years old."}
        return json.dumps({"model": "", "messages": [msg], **extra}).encode()

    def client(c):
        for r in range(a.rounds):
            i = c * a.rounds + r
            kind = ["valid", "oversized", "valid", "huge", "valid", "malformed", "valid", "disconnect"][i % 8]
            if kind == "valid":
                send(kind, chat(i, {"max_tokens": a.max_tokens, "temperature": 0.7, "seed": i}))
            elif kind == "oversized":
                send(kind, chat(i, {"n": 16, "max_tokens": 100000}))
            elif kind == "huge":
                send(kind, json.dumps({"messages": [{"role": "user", "content": "x" * (20 << 20)}]}).encode())
            elif kind == "malformed":
                send(kind, b'{"messages": [')
            else:
                send(kind, chat(i, {"max_tokens": 64}), read=False)

    at_start = rss_kib(a.pid) or 0
    peak = [at_start]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            v = rss_kib(a.pid)
            if v:
                peak[0] = max(peak[0], v)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    stop.set()
    sampler.join()

    alive = rss_kib(a.pid) is not None
    try:
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/health")
        healthy = c.getresponse().status == 200
    except OSError:
        healthy = False
    counts = {}
    for kind, status, _ in results:
        counts.setdefault(kind, {}).setdefault(str(status), 0)
        counts[kind][str(status)] += 1
    lat = sorted(s for kind, status, s in results if kind == "valid" and status == 200)

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 3) if lat else None

    valid = [st for kind, st, _ in results if kind == "valid"]
    print(json.dumps({
        "clients": a.clients, "requests": len(results), "wall_s": round(wall, 1), "counts": counts,
        "valid_answered": sum(1 for st in valid if st == 200), "valid_sent": len(valid),
        "valid_p50_s": pct(0.50), "valid_p99_s": pct(0.99), "rss_at_start_mib": round(at_start / 1024, 1),
        "peak_rss_mib": round(peak[0] / 1024, 1),
        "server_alive": alive and healthy,
    }))


if __name__ == "__main__":
    main()
