"""A local HTTP server on 127.0.0.1 that fails on purpose: /500/... /502/... /503/... answer that
status; /reset/... resets the connection. Used only by the corpus recorder."""

import socket
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def _fail(self):
        head = self.path.strip("/").split("/")[0]
        if head == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        code = int(head) if head.isdigit() else 500
        body = b"<html><body><h1>%d Server Error</h1></body></html>" % code
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = _fail

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
