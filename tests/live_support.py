"""Helpers for the live-capture tests (tests/test_live.py, tests/test_addon_live.py): a camera on the
network, for real."""

import http.server
import socketserver
import threading
import time

import cv2


class MJPEGServer:
    """An MJPEG stream over HTTP, as IP cameras and phone webcam apps serve: ``frames`` frames of the
    clip at ``fps``, then ``after``: "close" (the connection drops) or "stall" (nothing more is sent)."""

    def __init__(self, clip, frames, after="close", fps=30.0):
        cap = cv2.VideoCapture(clip)
        self.jpegs = []
        while len(self.jpegs) < frames:
            ok, bgr = cap.read()
            assert ok
            self.jpegs.append(cv2.imencode(".jpg", bgr)[1].tobytes())
        jpegs, self.release = self.jpegs, threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for jpg in jpegs:
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpg) + jpg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(1.0 / fps)
                    if after == "stall":
                        release.wait(120)
                except OSError:
                    pass

        release = self.release
        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
