"""A local stand-in for Overpass and Nominatim, run as its own process by the tests and the
geocoding benchmark; it never touches the internet.

    python fake_server.py --data <overpass.json>      # prints "PORT <n>" once listening

* ``POST /api/interpreter``: the elements of ``--data`` inside the query's ``[bbox:...]`` (a
  way also when its centre is within 0.002° of the bbox, as a building straddling a tile edge
  would be), with the file's ``osm3s`` header.
* ``GET /api/status``: "2 slots available now." unless scripted.
* ``GET /reverse``: an address made from the coordinates, "Unable to geocode" for every
  latitude whose 5-decimal key is divisible by 7 (see ``expected_address``).
* ``POST /_control/script`` ``{"path": ..., "responses": [...]}``: answers to give next on that
  path, each ``{"status", "body", "delay", "remark", "retry_after"}``.
* ``GET /_control/log``: every request with its arrival and end time (``time.time()``) and how
  many requests were in flight when it arrived; ``POST /_control/reset`` clears log and scripts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

WAY_REACH = 0.002
FREE_STATUS = "Connected as: 2130706433\nRate limit: 2\n2 slots available now.\n"

_lock = threading.Lock()
_log: list[dict] = []
_scripts: dict[str, deque] = defaultdict(deque)
_in_flight = 0
_data: dict = {"elements": []}


def expected_address(lat: float, lon: float) -> dict | None:
    """The address this server answers for (``lat``, ``lon``); None for "Unable to geocode"."""
    lat_e5, lon_e5 = round(lat * 1e5), round(lon * 1e5)
    if lat_e5 % 7 == 0:
        return None
    return {
        "road": f"Teststraße {lat_e5 % 1000}",
        "house_number": str(lon_e5 % 100 + 1),
        "postcode": f"{10000 + lat_e5 % 89999:05d}",
        "city": "Teststadt",
    }


def _inside(element: dict, south: float, west: float, north: float, east: float) -> bool:
    if element["type"] == "node":
        lat, lon, reach = element.get("lat"), element.get("lon"), 0.0
    else:
        center = element.get("center") or {}
        lat, lon, reach = center.get("lat"), center.get("lon"), WAY_REACH
    if lat is None or lon is None:
        return False
    return south - reach <= lat <= north + reach and west - reach <= lon <= east + reach


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: the tests read /_control/log instead
        pass

    def do_GET(self):
        self._handle("GET", b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._handle("POST", self.rfile.read(length))

    def _handle(self, method: str, body: bytes):
        global _in_flight
        url = urlparse(self.path)
        if url.path.startswith("/_control/"):
            return self._control(url.path, body)

        with _lock:
            _in_flight += 1
            entry = {
                "method": method, "path": url.path, "query": url.query,
                "data": parse_qs(body.decode()).get("data", [""])[0] if body else "",
                "user_agent": self.headers.get("User-Agent", ""),
                "start": time.time(), "in_flight": _in_flight,
            }
            _log.append(entry)
            scripted = _scripts[url.path].popleft() if _scripts[url.path] else None
        try:
            status, payload, headers = self._answer(url, entry, scripted or {})
            if scripted and scripted.get("delay"):
                time.sleep(scripted["delay"])
            self._send(status, payload, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with _lock:
                _in_flight -= 1
                entry["end"] = time.time()

    def _answer(self, url, entry: dict, scripted: dict):
        headers = {}
        if scripted.get("retry_after") is not None:
            headers["Retry-After"] = str(scripted["retry_after"])
        if "status" in scripted and scripted["status"] != 200:
            return scripted["status"], scripted.get("body", "refused").encode(), headers
        if "body" in scripted:
            return 200, scripted["body"].encode(), headers
        if url.path == "/api/status":
            return 200, FREE_STATUS.encode(), headers
        if url.path == "/api/interpreter":
            return 200, self._overpass(entry["data"], scripted.get("remark")), headers
        if url.path == "/reverse":
            return 200, self._reverse(parse_qs(url.query)), headers
        return 404, b"not found", headers

    def _overpass(self, query: str, remark: str | None) -> bytes:
        found = re.search(r"\[bbox:([-\d.]+),([-\d.]+),([-\d.]+),([-\d.]+)\]", query)
        if not found:
            return json.dumps({"elements": [], "remark": "runtime error: no bbox"}).encode()
        south, west, north, east = (float(v) for v in found.groups())
        elements = [e for e in _data["elements"] if _inside(e, south, west, north, east)]
        document = {"version": 0.6, "osm3s": _data.get("osm3s", {}), "elements": elements}
        if remark:
            document["remark"] = remark
        return json.dumps(document).encode()

    def _reverse(self, params: dict) -> bytes:
        lat, lon = float(params["lat"][0]), float(params["lon"][0])
        address = expected_address(lat, lon)
        if address is None:
            return json.dumps({"error": "Unable to geocode"}).encode()
        return json.dumps({"lat": str(lat), "lon": str(lon), "address": address}).encode()

    def _control(self, path: str, body: bytes):
        with _lock:
            if path == "/_control/log":
                payload = json.dumps(_log).encode()
            elif path == "/_control/reset":
                _log.clear()
                _scripts.clear()
                payload = b"{}"
            elif path == "/_control/script":
                order = json.loads(body)
                _scripts[order["path"]].extend(order["responses"])
                payload = b"{}"
            else:
                payload = b"{}"
        self._send(200, payload, {})

    def _send(self, status: int, payload: bytes, headers: dict):
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", help="Overpass JSON whose elements the server answers with")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.data:
        with open(args.data, encoding="utf-8") as handle:
            _data.update(json.load(handle))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
