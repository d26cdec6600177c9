"""Makes the syscalls the syscall profiles trace, and writes down what it did (JSON).

usage: syscall_driver.py WORKDIR FACTS_FILE

openat: a long non-ASCII path (several 127-byte chunks), a missing file, a created one.
connect: listeners on 127.0.0.1 and ::1 opened here, unix sockets that do not exist (a
path of 100 bytes; addresses of 80, 81 and 129 bytes, the last refused).
clone: a forked child (clone with SIGCHLD) and a thread (CLONE_THREAD).
kill: SIGUSR1 to the child, and signal 0 to a pid that does not exist.
unlinkat: the created file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

workdir, facts_path = sys.argv[1], sys.argv[2]
facts: dict[str, object] = {"pid": os.getpid()}

# openat
deep = os.path.join(workdir, "ü" * 40, "d" * 100)
os.makedirs(deep, exist_ok=True)
long_path = os.path.join(deep, "file-ä.txt")
with open(long_path, "w") as f:
    f.write("x")
fd = os.open(long_path, os.O_RDONLY)
facts["long_path"], facts["long_fd"] = long_path, fd
os.close(fd)
missing = os.path.join(workdir, "missing")
try:
    os.open(missing, os.O_RDONLY)
except FileNotFoundError:
    facts["missing"] = missing
created = os.path.join(workdir, "created")
fd = os.open(created, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
facts["created"], facts["created_fd"] = created, fd
os.close(fd)
os.unlink(created)

# connect
ports = {}
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    server = socket.socket(family)
    server.bind((host, 0))
    server.listen()
    client = socket.socket(family)
    client.connect((host, server.getsockname()[1]))
    ports[host] = server.getsockname()[1]
    client.close()
    server.close()
facts["ports"] = ports
unix = socket.socket(socket.AF_UNIX)
facts["unix_path"] = os.path.join(workdir, "no-such-socket")
# and one of 100 bytes: an address longer than one record's 80
facts["long_unix_path"] = os.path.join(workdir, "n" * (99 - len(workdir)))
for path in (facts["unix_path"], facts["long_unix_path"]):
    with contextlib.suppress(OSError):  # ENOENT: what the connect profile must show
        unix.connect(path)
# addresses of 80, 81 and 129 bytes as the caller says (129: more than the kernel takes,
# EINVAL), of a path with no NUL in them: what shows is what the length covers, 128 at most
libc = ctypes.CDLL(None, use_errno=True)
libc.connect.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint]
sized = {}
for size in (80, 81, 129):
    name = b"/" + bytes([ord("a") + size % 26]) * 200
    address = ctypes.create_string_buffer(struct.pack("<H", socket.AF_UNIX) + name)
    libc.connect(unix.fileno(), ctypes.addressof(address), size)
    sized[size] = (name[:min(size, 128) - 2].decode(), errno.errorcode[ctypes.get_errno()])
facts["sized_unix_paths"] = sized

# clone and kill
child = os.fork()
if child == 0:
    time.sleep(30)
    os._exit(0)
facts["child"] = child
thread_ids: list[int] = []
t = threading.Thread(target=lambda: thread_ids.append(threading.get_native_id()))
t.start()
t.join()
facts["thread"] = thread_ids[0]
os.kill(child, signal.SIGUSR1)
os.waitpid(child, 0)
free_pid = 4194303  # PID_MAX_LIMIT - 1: never handed out on a test machine
try:
    os.kill(free_pid, 0)
except ProcessLookupError:
    facts["free_pid"] = free_pid

with open(facts_path, "w") as f:
    json.dump(facts, f)
