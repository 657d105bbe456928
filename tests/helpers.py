"""Helpers shared by test modules: a local file server, pickles built opcode by opcode."""
import contextlib
import functools
import http.server
import pickle
import threading


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory and records each requested path in `log` (a list given per server)."""

    def __init__(self, *args, log: list, **kwargs):
        self.log = log
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.log.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve_directory(root):
    """(base URL, request log) of a static file server on 127.0.0.1 (an ephemeral port), stopped on exit."""
    log = []
    handler = functools.partial(CountingHandler, directory=str(root), log=log)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", log
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# ----------------------------------------------------------------------------------------- pickles, opcode by opcode
def glob(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def value(obj) -> bytes:
    """Opcodes that push a plain object (no PROTO/STOP)."""
    return pickle.dumps(obj, protocol=3)[2:-1]


def call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def program(body: bytes) -> bytes:
    return b"\x80\x03" + body + b"."
