#!/usr/bin/env python3
"""Two `tilt serve` replicas behind HAProxy (deploy/haproxy/haproxy.cfg), everything on 127.0.0.1.

Checks that concurrent seeded requests through the balancer equal the same requests sent to one replica, that both
replicas serve, that SIGTERM drains one replica without losing or duplicating a request, and that a replica killed with
SIGKILL fails its in-flight requests cleanly and is marked down at once. Measures the throughput of 1 against 2 replicas
and the failover time. Writes a JUnit file (one test case per check) that build.ps1 counts with the other suites.

Bounded everywhere: every wait has a deadline, every loop a count, and a watchdog ends the run; every process it starts
is stopped on the way out (normal exit, exception, SIGTERM/SIGINT/SIGHUP). Standard library only.
"""
import argparse
import concurrent.futures as futures
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HOST = "127.0.0.1"
WATCHDOG_S = 240          # the whole run; a healthy run takes well under a minute
REQUEST_TIMEOUT_S = 60    # one HTTP request, stream included
DRAIN_S = 30              # --drain-seconds of the replicas: long enough for every in-flight request here


class Failure(Exception):
    pass


class Watchdog(BaseException):
    """The whole run took too long: ends it (not a failed check that the next one could follow)."""


def check(condition, message):
    if not condition:
        raise Failure(message)


# ---- processes ----

class Processes:
    """Every process the run starts, each in its own process group, stopped in reverse order on the way out."""

    def __init__(self, logs):
        self.logs = logs
        self.started = []

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.logs, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, start_new_session=True)
        log.close()
        p.log_path = os.path.join(self.logs, name + ".log")
        p.name = name
        self.started.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.started):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in reversed(self.started):
            try:
                p.wait(timeout=DRAIN_S + 10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)


def free_port():
    # The port is free when chosen; nothing else on this loopback is expected to take it in the next second.
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(what, predicate, deadline_s, poll_s=0.05):
    """Polls predicate (bounded in time and count) until it returns a truthy value, which it returns."""
    end = time.monotonic() + deadline_s
    for _ in range(int(deadline_s / poll_s) + 1):
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            break
        time.sleep(poll_s)
    raise Failure(f"timed out after {deadline_s} s waiting for {what}")


def log_text(p):
    with open(p.log_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


class Replica:
    def __init__(self, procs, name, tilt, port=0):
        argv = ["dotnet", tilt, "serve", "--host", HOST, "--port", str(port), "--threads", "1", "--kv-f32",
                "--drain-seconds", str(DRAIN_S)]
        self.name = name
        self.process = procs.start(name, argv)
        def bound():
            check(self.process.poll() is None, f"{name} exited with {self.process.returncode}:\n{log_text(self.process)[-2000:]}")
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log_text(self.process))
            return int(m.group(1)) if m else None
        self.port = wait_for(f"{name} to listen", bound, 60)
        self.address = f"{HOST}:{self.port}"

    def wait_ready(self):
        wait_for(f"{self.name} to be ready", lambda: health(self.port)[0] == 200, 60)


# ---- HTTP ----

def request(port, method, path, body=None, timeout=REQUEST_TIMEOUT_S):
    """(status, headers, body bytes); raises OSError / http.client errors when the connection fails."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def health(port):
    try:
        status, _, body = request(port, "GET", "/health/ready", timeout=5)
        return status, json.loads(body)
    except (OSError, http.client.HTTPException, ValueError):
        return None, None


def texts_of(body, stream):
    """The text of each choice {index: text}; fails unless the answer is complete (a stream must end with [DONE])."""
    if not stream:
        doc = json.loads(body)
        check("error" not in doc, f"error answer: {doc.get('error')}")
        return {c["index"]: c["text"] if "text" in c else c["message"]["content"] for c in doc["choices"]}
    texts, done = {}, False
    for line in body.decode("utf-8").splitlines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        check(not done, "data after [DONE]")
        if data == "[DONE]":
            done = True
            continue
        doc = json.loads(data)
        check("error" not in doc, f"error frame: {doc.get('error')}")
        for c in doc["choices"]:
            piece = c.get("text")
            if piece is None:
                piece = (c.get("delta") or {}).get("content") or ""
            texts[c["index"]] = texts.get(c["index"], "") + piece
    check(done, "the stream ended without [DONE]")
    return texts


def complete(port, route, body):
    """Sends one generation request: (replica header, {index: text}); raises Failure on any error."""
    status, headers, data = request(port, "POST", route, body)
    check(status == 200, f"HTTP {status}: {data[:300]!r}")
    return headers.get("x-tilt-replica"), texts_of(data, body.get("stream", False))


def attempt(port, route, body, answered=None):
    """
    Like complete, but returns ("ok", replica, texts) or ("error", replica or None, why) instead of raising.
    answered(replica) is called once the response's headers are in (for a stream: its first event was sent).
    """
    replica = None
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT_S)
    try:
        conn.request("POST", route, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        replica = r.getheader("X-Tilt-Replica")
        if answered:
            answered(replica)
        data = r.read()
        if r.status != 200:
            return "error", replica, f"HTTP {r.status}"
        return "ok", replica, texts_of(data, body.get("stream", False))
    except (OSError, http.client.HTTPException, Failure, ValueError) as e:
        return "error", replica, f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def ok_count(port):
    """Generation requests a replica answered 200 (tilt_requests_total, outcome ok)."""
    _, _, data = request(port, "GET", "/metrics", timeout=5)
    total = 0.0
    for line in data.decode().splitlines():
        if line.startswith("tilt_requests_total{") and 'outcome="ok"' in line and "/v1/" in line and "/v1/models" not in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def server_status(stats_port, server):
    """The HAProxy status of a server of backend `replicas` (UP, DOWN, "UP 1/2", ...) from the stats CSV."""
    try:
        _, _, data = request(stats_port, "GET", "/stats;csv", timeout=5)
    except (OSError, http.client.HTTPException):
        return None
    lines = data.decode().splitlines()
    header = lines[0].lstrip("# ").split(",")
    col = header.index("status")
    for line in lines[1:]:
        f = line.split(",")
        if len(f) > col and f[0] == "replicas" and f[1] == server:
            return f[col]
    return None


# ---- the requests ----

def mixed_body(i):
    """Seeded requests of every kind: plain, n = 2, best-of-n, blockwise, chat; streamed and not."""
    stream = i % 2 == 1
    kind = (i // 2) % 5
    base = {"max_tokens": 32, "seed": 100 + i, "stream": stream}
    if kind == 0:
        return "/v1/completions", {**base, "prompt": "Once upon a time"}
    if kind == 1:
        return "/v1/completions", {**base, "prompt": "The cat", "n": 2}
    if kind == 2:
        return "/v1/completions", {**base, "prompt": "Once upon a time", "alignment": {"strategy": "bon", "n": 4}}
    if kind == 3:
        return "/v1/completions", {**base, "prompt": "Lily", "alignment": {"strategy": "blockwise", "k": 4, "block": 8}}
    return "/v1/chat/completions", {**base, "messages": [{"role": "user", "content": "Once upon a time"}]}


def long_body(i):
    # About half a second alone on one thread; eight together on one replica run for a few seconds.
    return "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 192, "seed": i % 4, "stream": True,
                               "alignment": {"strategy": "blockwise", "k": 16, "block": 8}}


def short_body(i):
    return "/v1/completions", {"prompt": "Tom", "max_tokens": 16, "seed": 7 + i, "stream": i % 2 == 0}


def throughput_body(i):
    return "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 64, "seed": i,
                               "alignment": {"strategy": "blockwise", "k": 8, "block": 8}}


def run_all(port, bodies, pool):
    return list(pool.map(lambda rb: attempt(port, *rb), bodies))


# ---- the run ----

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tilt", required=True, help="tilt.dll (src/Cli build output)")
    ap.add_argument("--haproxy-cfg", required=True)
    ap.add_argument("--junit", required=True, help="JUnit XML file to write")
    ap.add_argument("--report", help="file for the measured numbers (text)")
    args = ap.parse_args()

    logs = tempfile.mkdtemp(prefix="tilt-cluster-")
    procs = Processes(logs)
    cases = []       # (name, seconds, failure message or None)
    numbers = []     # measured, printed and written to --report
    state = {}

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    def on_alarm(_signum, _frame):
        raise Watchdog(f"watchdog: the run took over {WATCHDOG_S} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(WATCHDOG_S)

    def case(name, body):
        if "broken" in state:
            cases.append((name, 0.0, f"not run: {state['broken']}"))
            print(f"FAIL {name}: not run ({state['broken']})", flush=True)
            return
        t = time.monotonic()
        try:
            body()
            cases.append((name, time.monotonic() - t, None))
            print(f"PASS {name} ({time.monotonic() - t:.1f} s)", flush=True)
        except Failure as e:
            cases.append((name, time.monotonic() - t, str(e)))
            print(f"FAIL {name}: {e}", flush=True)

    pool = futures.ThreadPoolExecutor(max_workers=40)
    try:
        # ---- start: two replicas, then HAProxy ----
        def start():
            a = Replica(procs, "replica1", args.tilt)
            b = Replica(procs, "replica2", args.tilt)
            a.wait_ready()
            b.wait_ready()
            lb, stats = free_port(), free_port()
            env = {**os.environ, "TILT_LB_BIND": f"{HOST}:{lb}", "TILT_LB_STATS": f"{HOST}:{stats}",
                   "TILT_REPLICA_1": a.address, "TILT_REPLICA_2": b.address}
            state["haproxy"] = procs.start("haproxy", ["haproxy", "-db", "-f", args.haproxy_cfg], env=env)
            wait_for("HAProxy to see both replicas up",
                     lambda: server_status(stats, "replica1") == "UP" and server_status(stats, "replica2") == "UP", 20)
            state.update(a=a, b=b, lb=lb, stats=stats)
        case("replicas_and_haproxy_start", start)
        if len(cases) and cases[-1][2]:
            state["broken"] = "the replicas or HAProxy did not start"
        a, b, lb, stats = state.get("a"), state.get("b"), state.get("lb"), state.get("stats")

        # ---- 32 concurrent requests through HAProxy equal one replica alone ----
        def equal_outputs():
            bodies = [mixed_body(i) for i in range(32)]
            state["ok_before"] = (ok_count(a.port), ok_count(b.port))
            alone = [complete(a.port, *rb)[1] for rb in bodies]           # one at a time, on one replica
            state["ok_alone"] = ok_count(a.port)
            through = run_all(lb, bodies, pool)                            # 32 at once through the balancer
            for i, (outcome, replica, texts) in enumerate(through):
                check(outcome == "ok", f"request {i} through HAProxy failed: {texts}")
                check(texts == alone[i], f"request {i} ({bodies[i][1]}) differs through HAProxy (served by {replica}):\n"
                                         f"  alone:   {alone[i]}\n  through: {texts}")
                check(all(t for t in texts.values()), f"request {i}: an empty choice")
            state["through_replicas"] = [r for _, r, _ in through]
        case("thirty_two_concurrent_requests_through_haproxy_equal_one_replica", equal_outputs)

        def both_served():
            served_a = ok_count(a.port) - state["ok_alone"]
            served_b = ok_count(b.port) - state["ok_before"][1]
            seen = state["through_replicas"]
            numbers.append(f"32 concurrent through HAProxy: replica1 served {served_a}, replica2 served {served_b}")
            check(served_a > 0 and served_b > 0, f"one replica served nothing: replica1 {served_a}, replica2 {served_b}")
            check(served_a + served_b == 32, f"{served_a + served_b} requests served for 32 sent (a lost or duplicated request)")
            check(seen.count("replica1") == served_a and seen.count("replica2") == served_b,
                  f"X-Tilt-Replica headers {seen.count('replica1')}/{seen.count('replica2')} disagree with the replicas' metrics {served_a}/{served_b}")
        case("both_replicas_served_traffic", both_served)

        # ---- SSE through HAProxy arrives frame by frame, not at the end ----
        def unbuffered():
            conn = http.client.HTTPConnection(HOST, lb, timeout=REQUEST_TIMEOUT_S)
            try:
                route, body = long_body(0)
                t = time.monotonic()
                conn.request("POST", route, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                check(r.status == 200 and r.getheader("Content-Type", "").startswith("text/event-stream"), f"HTTP {r.status}")
                arrivals = []
                for _ in range(10_000):  # one line per iteration; the stream ends with [DONE]
                    line = r.readline()
                    if not line:
                        break
                    if line.startswith(b"data: "):
                        arrivals.append(time.monotonic() - t)
                total = time.monotonic() - t
            finally:
                conn.close()
            check(len(arrivals) >= 10, f"{len(arrivals)} frames")
            # Blockwise K=16 M=8 sends a frame per accepted block over the whole decode; buffered, they would all arrive at
            # once at the end. Passed through, the first comes a block after the start of the decode and the last 23 later.
            spread = arrivals[-1] - arrivals[0]
            check(spread >= 0.25 * arrivals[-1], f"the frames came between {arrivals[0]:.3f} s and {arrivals[-1]:.3f} s: the stream was buffered")
            numbers.append(f"SSE through HAProxy: first of {len(arrivals)} frames after {1000 * arrivals[0]:.0f} ms, last after {1000 * total:.0f} ms")
        case("server_sent_events_pass_through_haproxy_unbuffered", unbuffered)

        # ---- throughput: one replica directly against two behind HAProxy (a measurement, not a check) ----
        if "broken" not in state:
            bodies = [throughput_body(i) for i in range(32)]
            run_all(a.port, bodies[:4], pool)  # warm both paths once
            run_all(lb, bodies[:4], pool)
            with open("/proc/loadavg") as f:
                load = " ".join(f.read().split()[:3])
            for label, port in (("1 replica (direct)", a.port), ("2 replicas (HAProxy)", lb)):
                t = time.monotonic()
                results = run_all(port, bodies, pool)
                dt = time.monotonic() - t
                good = sum(1 for r in results if r[0] == "ok")
                numbers.append(f"throughput {label}: {good}/32 blockwise K=8 M=8 64-token requests in {dt:.2f} s = {good / dt:.1f} req/s")
            numbers.append(f"load average (1, 5, 15 min) at the throughput measurement: {load}; cores: {os.cpu_count()}")

        # ---- SIGTERM: drain one replica while requests run on it ----
        def drain():
            refs = {}
            for s in range(4):
                refs[s] = complete(b.port, *long_body(s))[1]
            short_refs = [complete(b.port, *short_body(i))[1] for i in range(8)]
            b_before = ok_count(b.port)
            inflight = [pool.submit(attempt, lb, *long_body(i)) for i in range(16)]
            # All 16 in the replicas' engines (running or queued; leastconn splits them about evenly), then SIGTERM.
            def in_engine(port):
                h = health(port)[1] or {}
                return h.get("running_requests", 0) + h.get("queued_requests", 0)
            def all_in():
                counts = in_engine(a.port), in_engine(b.port)
                return counts if sum(counts) == 16 else None
            on_a_at_term = wait_for("the 16 requests to reach the replicas", all_in, 30, 0.02)[0]
            check(on_a_at_term >= 4, f"leastconn sent only {on_a_at_term} of 16 requests to replica1")
            numbers.append(f"drain: SIGTERM to replica1 with {on_a_at_term} requests running or queued on it (16 in flight)")
            t0 = time.monotonic()
            a.process.send_signal(signal.SIGTERM)
            # Not ready at once: 503 (draining) until the listener closes, then no connection at all.
            wait_for("replica1 to report not ready", lambda: health(a.port)[0] != 200, 10, 0.01)
            numbers.append(f"drain: replica1 not ready {1000 * (time.monotonic() - t0):.0f} ms after SIGTERM")
            fresh = run_all(lb, [short_body(i) for i in range(8)], pool)
            for i, (outcome, replica, texts) in enumerate(fresh):
                check(outcome == "ok", f"a new request during the drain failed at the client: {texts}")
                check(replica == "replica2", f"a new request during the drain was answered by {replica}")
                check(texts == short_refs[i], f"new request {i} during the drain: wrong text")
            results = [f.result(timeout=REQUEST_TIMEOUT_S) for f in inflight]
            on_a = 0
            for i, (outcome, replica, texts) in enumerate(results):
                check(outcome == "ok", f"in-flight request {i} (on {replica}) was lost: {texts}")
                check(texts == refs[i % 4], f"in-flight request {i} (on {replica}): wrong text")
                on_a += replica == "replica1"
            code = a.process.wait(timeout=DRAIN_S + 10)
            check(code == 0, f"the drained replica exited with {code}")
            served_b = ok_count(b.port) - b_before
            on_b = 16 - on_a
            numbers.append(f"drain: of 16 in-flight, {on_a} finished on the draining replica1, {on_b} on replica2; "
                           f"8 new requests all on replica2; replica1 exited 0 after {time.monotonic() - t0:.1f} s")
            check(on_a == on_a_at_term, f"{on_a} requests finished on the draining replica; {on_a_at_term} were running or queued there")
            # The survivor ran exactly the requests its answers came from: nothing ran twice.
            check(served_b == on_b + 8, f"replica2 served {served_b} requests for {on_b + 8} answers from it (a duplicate or a lost count)")
            wait_for("HAProxy to mark replica1 down", lambda: (server_status(stats, "replica1") or "").startswith("DOWN"), 5)
        case("sigterm_drains_a_replica_without_losing_or_duplicating_a_request", drain)

        # ---- SIGKILL: a crash fails its in-flight requests cleanly, the balancer takes it out, requests go on ----
        def crash():
            # replica1 back on its port (HAProxy's server line names it) and in rotation again.
            state["a"] = Replica(procs, "replica1-restarted", args.tilt, a.port)
            state["a"].wait_ready()
            wait_for("HAProxy to see replica1 up again", lambda: server_status(stats, "replica1") == "UP", 10)
            refs = {s: complete(a.port, *long_body(s))[1] for s in range(4)}
            # Killed once two streams on replica2 have sent their first event: those cannot be replayed and must fail
            # at the client; one that has had no answer yet may be retried on replica1 (empty-response).
            streaming = []
            inflight = [pool.submit(attempt, lb, *long_body(i), streaming.append) for i in range(8)]
            wait_for("two streams answered by replica2", lambda: streaming.count("replica2") >= 2, 30, 0.01)
            t0 = time.monotonic()
            b.process.send_signal(signal.SIGKILL)
            b.process.wait(timeout=10)
            def marked_down():
                wait_for("HAProxy to mark replica2 down", lambda: (server_status(stats, "replica2") or "").startswith("DOWN"), 5, 0.01)
                return time.monotonic() - t0
            watcher = pool.submit(marked_down)
            first_ok, sent_count = None, 0
            for i in range(50):  # requests right after the crash, until it is marked down: the balancer routes around it
                sent = time.monotonic()
                outcome, replica, why = attempt(lb, *short_body(i))
                check(outcome == "ok", f"a request {1000 * (sent - t0):.0f} ms after the crash failed at the client: {why}")
                check(replica == "replica1", f"a request after the crash was answered by {replica}")
                first_ok = first_ok or (sent - t0, time.monotonic() - sent)
                sent_count += 1
                if watcher.done():
                    break
            marked = watcher.result(timeout=10)
            results = [f.result(timeout=REQUEST_TIMEOUT_S) for f in inflight]
            failed = [r for r in results if r[0] == "error"]
            for i, (outcome, replica, texts) in enumerate(results):
                if outcome == "ok":
                    check(texts == refs[i % 4], f"in-flight request {i} (on {replica}) completed with a wrong text")
            check(len(failed) >= 2, f"{len(failed)} of 8 in-flight requests failed; two streams were running on the crashed replica")
            check(all(r[1] == "replica2" for r in failed), f"a request failed that was not on the crashed replica: {failed}")
            numbers.append(f"SIGKILL: {len(failed)} of 8 in-flight requests failed at the client ({failed[0][2][:80]}), "
                           f"{8 - len(failed)} completed on replica1")
            numbers.append(f"failover: replica2 marked DOWN {1000 * marked:.0f} ms after SIGKILL (checks: inter 1 s, fastinter 250 ms, fall 2); "
                           f"{sent_count} requests sent meanwhile all answered by replica1, none failed at the client (the first sent "
                           f"{1000 * first_ok[0]:.0f} ms after the kill took {1000 * first_ok[1]:.0f} ms, queued behind the survivor's streams)")
            check(marked < 3.0, f"marking the crashed replica down took {marked:.2f} s (checks every 1 s, fall 2 at 250 ms)")
            after = run_all(lb, [short_body(i) for i in range(8)], pool)
            check(all(o == "ok" and r == "replica1" for o, r, _ in after), f"requests after failover failed: {after}")
        case("sigkill_fails_in_flight_requests_cleanly_and_the_balancer_marks_the_replica_down", crash)
    except BaseException as e:
        if not isinstance(e, (SystemExit, KeyboardInterrupt, Failure, Watchdog)):
            raise
        cases.append(("run", 0.0, f"interrupted: {e}"))
        print(f"FAIL run interrupted: {e}", flush=True)
    finally:
        signal.alarm(0)
        pool.shutdown(wait=False, cancel_futures=True)
        procs.stop_all()

    for line in numbers:
        print(line, flush=True)
    if args.report:
        with open(args.report, "w") as f:
            f.write("\n".join(numbers) + "\n")
    failures = sum(1 for c in cases if c[2])
    suite = ET.Element("testsuite", name="cluster (HAProxy + 2 replicas)", tests=str(len(cases)), failures=str(failures),
                       errors="0", skipped="0", disabled="0", time=f"{sum(c[1] for c in cases):.2f}")
    for name, seconds, failure in cases:
        tc = ET.SubElement(suite, "testcase", classname="cluster", name=name, time=f"{seconds:.2f}")
        if failure:
            ET.SubElement(tc, "failure", message=failure[:500]).text = failure
    ET.ElementTree(suite).write(args.junit, encoding="utf-8", xml_declaration=True)
    if failures:
        print(f"logs of the processes: {logs}", flush=True)
    print(f"cluster: {len(cases) - failures} passed, {failures} failed", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
