"""The Python `kubernetes` client's exec and port-forward against skiff.

Walks what the client's own e2e tests (kubernetes/e2e_test/test_client.py:
test_pod_apis, test_pod_exec_close_channel, test_exit_code,
test_portforward_raw, test_portforward_http) do, with the pods the Rust
test created from a busybox image: `box` (prints the date every 5 s) and
`ports` (echo servers on 1234 and 1235, httpd on 80). Exits non-zero with
a message at the first difference.
"""

import gzip
import json
import select
import socket
import sys
import time
import urllib.request

from kubernetes import client, config
from kubernetes.stream import portforward, stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, RESIZE_CHANNEL

config.load_kube_config()
api = client.CoreV1Api()
NS = "default"


def check(condition, message):
    if not condition:
        print("FAILED:", message, file=sys.stderr)
        sys.exit(1)


def exec_pod_apis():
    resp = stream(api.connect_get_namespaced_pod_exec, "box", NS,
                  command=["/bin/sh", "-c", "for i in $(seq 1 3); do date; done"],
                  stderr=False, stdin=False, stdout=True, tty=False)
    check(isinstance(resp, str) and len(resp.splitlines()) == 3, "three dates: %r" % resp)

    resp = stream(api.connect_get_namespaced_pod_exec, "box", NS,
                  command=["/bin/sh", "-c", 'echo -n "This is a test string" | gzip'],
                  stderr=False, stdin=False, stdout=True, tty=False, binary=True)
    check(isinstance(resp, bytes), "binary output is bytes: %r" % type(resp))
    check(gzip.decompress(resp).decode() == "This is a test string", "gzip round trip")

    resp = stream(api.connect_post_namespaced_pod_exec, "box", NS, command=["uptime"],
                  stderr=False, stdin=False, stdout=True, tty=False)
    check(len(resp.splitlines()) == 1, "uptime: %r" % resp)

    for binary in (False, True):
        enc = (lambda s: s.encode()) if binary else (lambda s: s)
        resp = stream(api.connect_post_namespaced_pod_exec, "box", NS, command=["/bin/sh"],
                      stderr=True, stdin=True, stdout=True, tty=False, binary=binary,
                      _preload_content=False)
        resp.write_stdin(enc("echo test string 1\n"))
        line = resp.readline_stdout(timeout=5)
        check(not resp.peek_stderr(), "nothing on stderr")
        check(line == enc("test string 1"), "stdout line: %r" % line)
        resp.write_stdin(enc("echo test string 2 >&2\n"))
        line = resp.readline_stderr(timeout=5)
        check(not resp.peek_stdout(), "nothing on stdout")
        check(line == enc("test string 2"), "stderr line: %r" % line)
        resp.write_stdin(enc("exit\n"))
        resp.update(timeout=5)
        deadline = time.time() + 10
        while True:
            line = resp.read_channel(ERROR_CHANNEL)
            if len(line) != 0:
                break
            check(time.time() < deadline, "a status on the error channel")
            resp.update(timeout=1)
        check(json.loads(line)["status"] == "Success", "status: %r" % line)
        resp.update(timeout=5)
        check(not resp.is_open(), "the connection closes after the status")


def exec_close_channel():
    resp = stream(api.connect_post_namespaced_pod_exec, "box", NS, command=["/bin/sh", "-c", "cat"],
                  stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
    check(resp.subprotocol == "v5.channel.k8s.io", "v5 is chosen: %r" % resp.subprotocol)
    resp.write_stdin("test-close\n")
    check(resp.readline_stdout(timeout=5) == "test-close", "cat echoes")
    resp.close_channel(0)
    resp.run_forever(timeout=15)
    check(not resp.is_open(), "cat exits once stdin is closed")
    check(resp.returncode == 0, "return code %r" % resp.returncode)


def exec_exit_codes():
    for command, value in ((["false"], 1), (["/bin/sh", "-c", "sleep 1; exit 3"], 3),
                           (["true"], 0), (["/bin/sh", "-c", "ls /"], 0)):
        resp = stream(api.connect_get_namespaced_pod_exec, "box", NS, command=command,
                      stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
        check(resp.returncode is None, "no code before the end")
        resp.run_forever(timeout=10)
        check(resp.returncode == value, "%r exits %r, got %r" % (command, value, resp.returncode))


def exec_terminal():
    resp = stream(api.connect_get_namespaced_pod_exec, "box", NS, command=["/bin/sh"],
                  stderr=False, stdin=True, stdout=True, tty=True, _preload_content=False)
    resp.write_channel(RESIZE_CHANNEL, json.dumps({"Width": 100, "Height": 40}))
    resp.write_stdin("tty; stty size; exit 7\n")
    output = ""
    deadline = time.time() + 10
    while resp.is_open() and time.time() < deadline:
        resp.update(timeout=1)
        output += resp.read_stdout(timeout=0) or ""
    check("/dev/pts/" in output, "a terminal: %r" % output)
    check("40 100" in output, "its size: %r" % output)
    check(resp.returncode == 7, "return code %r" % resp.returncode)


def portforward_raw():
    for ix in range(3):
        ix = str(ix + 1).encode()
        pf = portforward(api.connect_get_namespaced_pod_portforward, "ports", NS, ports="1234,1235,1236")
        check(pf.connected, "connected")
        sock1234, sock1235 = pf.socket(1234), pf.socket(1235)
        sock1234.setblocking(True)
        sock1235.setblocking(True)
        sent1234 = b"Test " + ix + b" port 1234 forwarding"
        sent1235 = b"Test " + ix + b" port 1235 forwarding"
        sock1234.sendall(sent1234)
        sock1235.sendall(sent1235)
        reply1234 = reply1235 = b""
        deadline = time.time() + 30
        while reply1234 != sent1234 or reply1235 != sent1235:
            check(time.time() < deadline, "echoes: %r %r" % (reply1234, reply1235))
            r, _w, _x = select.select([sock1234, sock1235], [], [], 1)
            if sock1234 in r:
                data = sock1234.recv(1024)
                check(data != b"", "unexpected close of 1234")
                reply1234 += data
            if sock1235 in r:
                data = sock1235.recv(1024)
                check(data != b"", "unexpected close of 1235")
                reply1235 += data
        check(pf.connected, "still connected")
        sock = pf.socket(1236)
        sock.setblocking(True)
        check(sock.recv(1024) == b"", "nothing listens on 1236")
        check(pf.error(1236) is not None, "an error for 1236")
        sock.close()
        for sock in (sock1234, sock1235):
            sent = b"Another test " + ix + b" using fileno " + str(sock.fileno()).encode()
            sock.sendall(sent)
            reply = b""
            deadline = time.time() + 30
            while reply != sent:
                check(time.time() < deadline, "second echo")
                r, _w, _x = select.select([sock], [], [], 1)
                if r:
                    data = sock.recv(1024)
                    check(data != b"", "unexpected close")
                    reply += data
            sock.close()
        deadline = time.time() + 10
        while pf.connected:
            check(time.time() < deadline, "the WebSocket closes once every port is closed")
            time.sleep(0.1)
        check(pf.error(1234) is None and pf.error(1235) is None, "no errors for open ports")


def portforward_http():
    original = socket.create_connection

    def create_connection(address, *args, **kwargs):
        name = address[0].decode() if isinstance(address[0], bytes) else address[0]
        parts = name.split(".")
        if len(parts) != 3 or parts[2] != "kubernetes":
            return original(address, *args, **kwargs)
        pf = portforward(api.connect_get_namespaced_pod_portforward, parts[0], parts[1], ports=str(address[1]))
        return pf.socket(address[1])

    try:
        socket.create_connection = create_connection
        response = urllib.request.urlopen("http://ports.default.kubernetes/")
        html = response.read().decode("utf-8")
    finally:
        socket.create_connection = original
    check(response.code == 200, "status %r" % response.code)
    check("<h1>Welcome to skiff</h1>" in html, "page: %r" % html)


for step in (exec_pod_apis, exec_close_channel, exec_exit_codes, exec_terminal, portforward_raw, portforward_http):
    step()
    print("ok:", step.__name__)
