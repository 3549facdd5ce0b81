#!/usr/bin/env python3
"""An idle-connection flood on a node's admin port, and what it costs everyone else.

Starts a node (the release binary, or $KEEL_BIN) with the default admin limits, opens
CONNECTIONS (default 20,000) idle TCP connections to its admin port from several processes
(each process may hold fewer files than that), then, while they are held, times ROUNDS times
a new MQTT client's CONNECT until its CONNACK and a GET /healthz until its answer, and reads
the node's open files and resident memory from /proc. Prints one line per round and the
medians; exits 1 if a median is over 1 s or a round got no answer.

    scripts/admin-flood.py [CONNECTIONS] [ROUNDS]
"""

import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

CONNECTIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
PER_PROCESS = 6_000
TARGET = os.environ.get("CARGO_TARGET_DIR", "target")
BIN = os.environ.get("KEEL_BIN", f"{TARGET}/release/keel")
# An MQTT 3.1.1 CONNECT: clean session, keep-alive 0, client id "flood-probe".
CONNECT = bytes([0x10, 23, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 0, 0, 11]) + b"flood-probe"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hold(port, count, opened, stop):
    """Opens `count` idle connections to `port` and holds them until `stop` is set."""
    held = []
    for _ in range(count):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            held.append(s)
        except OSError:
            s.close()
    opened.put(len(held))
    stop.wait()


def mqtt_connect_ms(port):
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(CONNECT)
        connack = s.recv(4)
    took = (time.monotonic() - start) * 1000
    return took if connack[:1] == b"\x20" and connack[3:4] == b"\x00" else None


def healthz_ms(port):
    start = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        ok = answer.status == 200
    took = (time.monotonic() - start) * 1000
    return took if ok else None


def node_usage(pid):
    files = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as status:
        rss = next(int(l.split()[1]) for l in status if l.startswith("VmRSS:"))
    return files, rss // 1024


def main():
    work = tempfile.mkdtemp()
    mqtt, admin = free_port(), free_port()
    config = os.path.join(work, "keel.toml")
    with open(config, "w") as f:
        f.write(
            f'[listeners]\ntcp = "127.0.0.1:{mqtt}"\nws = ""\nhttp = "127.0.0.1:{admin}"\n'
            '[mqtt]\nsys_interval_secs = 0\n[durability]\nstore = "memory"\n'
        )
    node = subprocess.Popen(
        [BIN, "serve", "--config", config, "--data-dir", os.path.join(work, "data")],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "keel.log"), "w"),
    )
    try:
        for _ in range(100):
            try:
                healthz_ms(admin)
                break
            except OSError:
                time.sleep(0.1)
        print(f"node: {node_usage(node.pid)[0]} open files, {node_usage(node.pid)[1]} MB before")
        opened, stop = multiprocessing.Queue(), multiprocessing.Event()
        holders = []
        left = CONNECTIONS
        while left > 0:
            count = min(PER_PROCESS, left)
            holders.append(multiprocessing.Process(target=hold, args=(admin, count, opened, stop)))
            left -= count
        start = time.monotonic()
        for h in holders:
            h.start()
        held = sum(opened.get() for _ in holders)
        print(f"flood: {held} of {CONNECTIONS} connections opened in {time.monotonic() - start:.1f} s")
        rounds = []
        for i in range(ROUNDS):
            try:
                m = mqtt_connect_ms(mqtt)
            except OSError as e:
                m = None
                print(f"  MQTT: {e}")
            try:
                h = healthz_ms(admin)
            except OSError as e:
                h = None
                print(f"  /healthz: {e}")
            files, rss = node_usage(node.pid)
            print(f"round {i + 1}: MQTT CONNACK {m and round(m, 1)} ms, /healthz {h and round(h, 1)} ms, node {files} open files, {rss} MB")
            rounds.append((m, h))
            time.sleep(0.5)
        stop.set()
        for h in holders:
            h.join()
        if any(m is None or h is None for m, h in rounds):
            print("a round got no answer")
            return 1
        mqtt_median = statistics.median(m for m, _ in rounds)
        health_median = statistics.median(h for _, h in rounds)
        print(f"median of {ROUNDS}: MQTT CONNACK {mqtt_median:.1f} ms, /healthz {health_median:.1f} ms")
        return 0 if mqtt_median < 1000 and health_median < 1000 else 1
    finally:
        node.terminate()
        node.wait()


if __name__ == "__main__":
    sys.exit(main())
