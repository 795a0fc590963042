"""A process that imports TensorFlow and NiftyNet once and forks a child per NiftyNet run.

    python -m lrsearch.engines.child.server FD

Importing TensorFlow and NiftyNet is about 2.5-3 s of every trial; a trial stopped at a short
rung trains for less than that. This process does the imports once
(:func:`lrsearch.engines.child.main.prepare`), tells the parent ``ready`` on the Unix socket
``FD``, and then serves one request at a time (:func:`lrsearch.nifty.contract.encode_request`,
sent with the descriptor the child writes its output to): it forks, the child runs the
request's NiftyNet runs exactly as ``python -m lrsearch.engines.child.main`` would (its own
process group, working directory and environment, stdin closed), and the server replies
``started <pid>`` and, once the child is gone, ``exited <status>``.

Fork is safe here: the server has run no TensorFlow op and holds no session; the only threads
its imports start are OpenBLAS's (numpy's and scipy's), which stop and restart around fork.
A child gets SIGKILL when the server dies, as the server does when its parent dies, so killing
a worker leaves nothing training. Python 3.7-compatible, standard library only.
"""

import array
import ctypes
import gc
import os
import signal
import socket
import sys
import traceback

from lrsearch.engines.child import main
from lrsearch.nifty import contract

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid):
    """SIGKILL when the parent dies (Linux); exits at once if it already has."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:  # not Linux/glibc: the parent stops its children itself
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


def _reply(sock, *words):
    sock.sendall((" ".join(str(w) for w in words) + "\n").encode("ascii"))


def _receive(sock):
    """The next request and its output descriptor; None when the parent has hung up."""
    fds = array.array("i")
    data = b""
    while b"\n" not in data:
        chunk, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\n")
    size = int(head)
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None
        body += chunk
    if len(fds) != 1:
        raise ValueError(f"a request carries exactly one descriptor, got {len(fds)}")
    return contract.decode_request(body), fds[0]


def _exit_status(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _run_child(request, output, sock, server_pid):
    """In the forked child: become the request's process and run it. Never returns."""
    status = 1
    try:
        os.setpgid(0, 0)  # the parent stops the child's process group; the server is not in it
        _die_with_parent(server_pid)
        sock.close()
        os.dup2(output, 1)
        os.dup2(output, 2)
        os.close(output)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        runs, env, cwd = request
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        status = main.run(runs, program=contract.CHILD_MAIN)
    except SystemExit as stop:  # NiftyNet's argument errors, --help
        if stop.code is None or isinstance(stop.code, int):
            status = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - printed where the parent reads the child
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(status)


def serve(fd):
    sock = socket.socket(fileno=fd)
    main.prepare()
    gc.freeze()  # the imports' objects: a child's collections then leave their pages shared
    sys.stdout.flush()
    sys.stderr.flush()
    _reply(sock, contract.READY)
    server_pid = os.getpid()
    while True:
        received = _receive(sock)
        if received is None:
            return 0
        request, output = received
        pid = os.fork()
        if pid == 0:
            _run_child(request, output, sock, server_pid)
        os.close(output)
        try:
            os.setpgid(pid, pid)  # also here: no race with the parent stopping the group
        except OSError:  # the child got there first, or is gone already
            pass
        _reply(sock, contract.STARTED, pid)
        _, status = os.waitpid(pid, 0)
        _reply(sock, contract.EXITED, _exit_status(status))


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1])))
