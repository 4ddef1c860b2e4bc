#!/usr/bin/env python3
"""Serves a directory (host-wasm/ by default) on loopback, opens pages one after the other in one
headless Chromium session through chromedriver (WebDriver over HTTP, standard library only), and
prints what each page reports. A page reports by setting `window.__results` (an object; with
`error` when it failed). The session's profile (IndexedDB included) lasts across the pages, so
a second page can check what the first left behind, as a reload would.

    run.py [--root DIR] [--timeout SECONDS] [--profile DIR --port PORT] PAGE [PAGE ...]

With --profile (Chromium's user data directory) and a fixed --port (IndexedDB belongs to an
origin, and the port is part of it), a later run starts a new browser on the same profile: what
a browser restart keeps.
"""
import argparse
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent  # host-wasm/: the page loads ../pkg and ../node_modules


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)["value"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default=str(ROOT))
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--profile", help="Chromium user data directory, kept across runs")
    parser.add_argument("--port", type=int, help="HTTP port (fixed, so the origin stays the same)")
    parser.add_argument("pages", nargs="+")
    args = parser.parse_args()
    http_port, driver_port = args.port or free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(http_port), "--bind",
                               "127.0.0.1", "--directory", args.root],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = subprocess.Popen(["chromedriver", f"--port={driver_port}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{driver_port}"
    session = None
    try:
        for _ in range(100):
            try:
                call(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        chrome_args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        if args.profile:
            chrome_args.append(f"--user-data-dir={args.profile}")
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": chrome_args}}}}
        session = call(base, "POST", "/session", caps)["sessionId"]
        s = f"/session/{session}"
        for page in args.pages:
            call(base, "POST", s + "/url", {"url": f"http://127.0.0.1:{http_port}/{page}"})
            deadline = time.time() + args.timeout
            results = None
            while time.time() < deadline:
                results = call(base, "POST", s + "/execute/sync",
                               {"script": "return window.__results ?? null", "args": []})
                if results is not None:
                    break
                time.sleep(0.5)
            text = call(base, "POST", s + "/execute/sync", {"script": (
                "const o = document.getElementById('out');"
                "return (o ?? document.body).innerText"), "args": []})
            print(f"--- {page}\n{text}")
            if results is None or "error" in results:
                print(f"{page}: the page did not finish or failed: {results}", file=sys.stderr)
                return 1
            print(json.dumps(results))
        return 0
    finally:
        if session:
            try:
                call(base, "DELETE", f"/session/{session}")
            except OSError:
                pass
        driver.terminate()
        server.terminate()
        driver.wait()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
