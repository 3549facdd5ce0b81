#!/usr/bin/env python3
"""Captures real MQTT packets for the fuzz seed corpus.

Starts two local mosquitto brokers (one open, one refusing anonymous clients), puts a small
TCP proxy in front of each that records both directions of every connection, drives
mosquitto_pub and mosquitto_sub through them in MQTT 3.1, 3.1.1 and 5.0, then splits each
recorded stream into packets and writes one file per distinct packet:

    seeds/decode_v3_1/, decode_v3_1_1/, decode_v5/   every packet of that version, both directions
    seeds/decode_connect/                            every CONNECT, and a few whole client streams

Files are named real-<client id>-<c2s|s2c>-<index>-<type>. Old real-* files are replaced.
Run from fuzz/: python3 tools/capture_seeds.py  (needs mosquitto and mosquitto-clients).
Everything listens on 127.0.0.1 only.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

OPEN_BROKER_PORT = 18830
OPEN_PROXY_PORT = 18831
CLOSED_BROKER_PORT = 18832
CLOSED_PROXY_PORT = 18833

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "seeds")
TYPE_NAMES = {
    1: "connect", 2: "connack", 3: "publish", 4: "puback", 5: "pubrec", 6: "pubrel",
    7: "pubcomp", 8: "subscribe", 9: "suback", 10: "unsubscribe", 11: "unsuback",
    12: "pingreq", 13: "pingresp", 14: "disconnect", 15: "auth",
}
LEVEL_TARGETS = {3: "decode_v3_1", 4: "decode_v3_1_1", 5: "decode_v5"}
# Client streams kept whole for decode_connect, where a CONNECT must come first.
WHOLE_STREAMS = {"v311-pub-qos2", "v5-pub-qos2", "v5-sub", "v31-sub"}


class Recorder:
    """A TCP proxy that keeps the bytes of each finished connection, in order of closing."""

    def __init__(self, listen_port, upstream_port):
        self.upstream_port = upstream_port
        self.connections = []
        self.lock = threading.Lock()
        self.server = socket.create_server(("127.0.0.1", listen_port))
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            client, _ = self.server.accept()
            threading.Thread(target=self.relay, args=(client,), daemon=True).start()

    def relay(self, client):
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        streams = {"c2s": bytearray(), "s2c": bytearray()}
        pumps = [
            threading.Thread(target=pump, args=(client, upstream, streams["c2s"])),
            threading.Thread(target=pump, args=(upstream, client, streams["s2c"])),
        ]
        for t in pumps:
            t.start()
        for t in pumps:
            t.join()
        client.close()
        upstream.close()
        with self.lock:
            self.connections.append(streams)


def pump(src, dst, record):
    """Copies one direction until its end, then half-closes it, as TCP would."""
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            data = b""
        if not data:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return
        record.extend(data)
        try:
            dst.sendall(data)
        except OSError:
            return


def split_packets(stream):
    """Splits a byte stream at MQTT fixed-header boundaries; a truncated tail is dropped."""
    packets, i = [], 0
    while i < len(stream):
        length, shift, j = 0, 0, i + 1
        while j < len(stream):
            byte = stream[j]
            length |= (byte & 0x7F) << shift
            shift += 7
            j += 1
            if byte & 0x80 == 0:
                break
        end = j + length
        if end > len(stream):
            break
        packets.append(bytes(stream[i:end]))
        i = end
    return packets


def connect_info(packet):
    """(protocol level, client id) of a CONNECT packet."""
    i = 1
    while packet[i] & 0x80:
        i += 1
    body = packet[i + 1:]
    name_len = int.from_bytes(body[0:2], "big")
    level = body[2 + name_len]
    pos = 2 + name_len + 1 + 1 + 2  # level, flags, keep alive
    if level == 5:
        props_len, shift = 0, 0
        while True:
            byte = body[pos]
            pos += 1
            props_len |= (byte & 0x7F) << shift
            shift += 7
            if byte & 0x80 == 0:
                break
        pos += props_len
    id_len = int.from_bytes(body[pos:pos + 2], "big")
    return level, body[pos + 2:pos + 2 + id_len].decode()


def start_broker(port, allow_anonymous, workdir):
    conf = os.path.join(workdir, f"mosquitto-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous {str(allow_anonymous).lower()}\n"
                "persistence false\n")
    return subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def run(args, port=OPEN_PROXY_PORT, background=False):
    cmd = [args[0], "-h", "127.0.0.1", "-p", str(port)] + args[1:]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    return None


def drive_clients():
    for version, tag in (("mqttv31", "v31"), ("mqttv311", "v311"), ("mqttv5", "v5")):
        v5 = version == "mqttv5"
        sub = ["mosquitto_sub", "-V", version, "-i", f"{tag}-sub", "-q", "2", "-k", "30",
               "-t", f"seed/{tag}/+/temp", "-t", f"seed/{tag}/#", "-C", "5"]
        if v5:
            sub += ["-x", "60", "--retain-as-published",
                    "-D", "connect", "user-property", "client", "sub",
                    "-D", "connect", "receive-maximum", "20",
                    "-D", "connect", "topic-alias-maximum", "10",
                    "-D", "connect", "maximum-packet-size", "65536",
                    "-D", "subscribe", "user-property", "s", "1"]
        subscriber = run(sub, background=True)
        time.sleep(0.7)
        pub = ["mosquitto_pub", "-V", version]
        pubs = [
            [f"{tag}-pub-qos0-retain", "-t", f"seed/{tag}/room/temp", "-m", "21.5", "-r"],
            [f"{tag}-pub-qos1", "-q", "1", "-t", f"seed/{tag}/room/temp", "-m", "hello qos 1",
             "-u", "alice", "-P", "secret"],
            [f"{tag}-pub-qos2", "-q", "2", "-t", f"seed/{tag}/x", "-m", "exactly once",
             "--will-topic", f"seed/{tag}/will", "--will-payload", "gone", "--will-qos", "1",
             "--will-retain"],
            [f"{tag}-pub-empty", "-q", "1", "-t", f"seed/{tag}/empty", "-n", "-k", "10"],
            [f"{tag}-pub-clear-retain", "-t", f"seed/{tag}/room/temp", "-n", "-r"],
        ]
        for client_id, *rest in pubs:
            args = pub + ["-i", client_id] + rest
            if v5:
                args += ["-D", "publish", "user-property", "a", "b",
                         "-D", "connect", "session-expiry-interval", "60"]
                if "qos2" in client_id:
                    args += ["-D", "publish", "content-type", "text/plain",
                             "-D", "publish", "response-topic", "seed/reply",
                             "-D", "publish", "correlation-data", "c0ffee",
                             "-D", "publish", "message-expiry-interval", "3600",
                             "-D", "publish", "payload-format-indicator", "1",
                             "-D", "will", "will-delay-interval", "5",
                             "-D", "will", "content-type", "text/plain",
                             "-D", "will", "user-property", "w", "1",
                             "-D", "connect", "request-problem-information", "1",
                             "-D", "connect", "request-response-information", "1",
                             "-D", "disconnect", "user-property", "bye", "now"]
                if "qos1" in client_id:
                    args += ["-D", "publish", "topic-alias", "3"]
            run(args)
        subscriber.wait(timeout=20)
        # Subscribe, unsubscribe, and wait a second for the acknowledgements.
        unsub = ["mosquitto_sub", "-V", version, "-i", f"{tag}-unsub", "-t", "seed/a",
                 "-t", "seed/b/#", "-U", "seed/a", "-U", "seed/b/#", "-W", "1"]
        if v5:
            unsub += ["-D", "unsubscribe", "user-property", "u", "2"]
        run(unsub)
        # The shortest keep-alive mosquitto_sub allows, then silence: PINGREQ and PINGRESP.
        run(["mosquitto_sub", "-V", version, "-i", f"{tag}-ping", "-k", "5", "-W", "7",
             "-t", "seed/quiet"])
    # MQTT 5 session takeover: the broker sends the first client DISCONNECT 0x8E.
    first = run(["mosquitto_sub", "-V", "mqttv5", "-i", "v5-taken-over", "-t", "seed/t",
                 "-W", "4"], background=True)
    time.sleep(0.7)
    run(["mosquitto_sub", "-V", "mqttv5", "-i", "v5-taken-over", "-t", "seed/t", "-W", "1"])
    first.wait(timeout=20)
    # An authentication method the broker does not support: CONNACK 0x8C.
    run(["mosquitto_pub", "-V", "mqttv5", "-i", "v5-bad-auth", "-t", "seed/t", "-m", "x",
         "-D", "connect", "authentication-method", "SCRAM-SHA-1",
         "-D", "connect", "authentication-data", "n,,n=user,r=nonce"])
    # Anonymous clients refused: CONNACK return code 5 / reason 0x87.
    for version, tag in (("mqttv31", "v31"), ("mqttv311", "v311"), ("mqttv5", "v5")):
        run(["mosquitto_pub", "-V", version, "-i", f"{tag}-refused", "-t", "seed/t", "-m", "x"],
            port=CLOSED_PROXY_PORT)


def write_seeds(connections):
    for target in list(LEVEL_TARGETS.values()) + ["decode_connect"]:
        os.makedirs(os.path.join(SEEDS, target), exist_ok=True)
        for name in os.listdir(os.path.join(SEEDS, target)):
            if name.startswith("real-"):
                os.remove(os.path.join(SEEDS, target, name))
    written = {}
    seen_ids = {}
    for streams in connections:
        c2s = split_packets(streams["c2s"])
        if not c2s or c2s[0][0] >> 4 != 1:
            continue
        level, client_id = connect_info(c2s[0])
        # A client id that connected before (the takeover) gets a suffix.
        seen_ids[client_id] = seen_ids.get(client_id, 0) + 1
        if seen_ids[client_id] > 1:
            client_id = f"{client_id}{seen_ids[client_id]}"
        target = LEVEL_TARGETS[level]
        for direction in ("c2s", "s2c"):
            for index, packet in enumerate(split_packets(streams[direction])):
                kind = TYPE_NAMES.get(packet[0] >> 4, "unknown")
                name = f"real-{client_id}-{direction}-{index:02}-{kind}"
                targets = [target] + (["decode_connect"] if kind == "connect" else [])
                for t in targets:
                    if packet in written.setdefault(t, set()):
                        continue
                    written[t].add(packet)
                    with open(os.path.join(SEEDS, t, name), "wb") as f:
                        f.write(packet)
        if client_id in WHOLE_STREAMS:
            with open(os.path.join(SEEDS, "decode_connect", f"real-{client_id}-c2s-stream"),
                      "wb") as f:
                f.write(bytes(streams["c2s"]))
    for t in sorted(written):
        print(f"{t}: {len(written[t])} packets")


def main():
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: apt-get install mosquitto mosquitto-clients")
    workdir = tempfile.mkdtemp(prefix="keel-seeds-")
    brokers = [start_broker(OPEN_BROKER_PORT, True, workdir),
               start_broker(CLOSED_BROKER_PORT, False, workdir)]
    try:
        time.sleep(0.5)
        open_proxy = Recorder(OPEN_PROXY_PORT, OPEN_BROKER_PORT)
        closed_proxy = Recorder(CLOSED_PROXY_PORT, CLOSED_BROKER_PORT)
        drive_clients()
        time.sleep(1)
        write_seeds(open_proxy.connections + closed_proxy.connections)
    finally:
        for broker in brokers:
            broker.terminate()
            broker.wait()
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
