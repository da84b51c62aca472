"""Load on `kft serve`'s JSON API: N requests from T threads against a local server, p50/p99 latency, req/s.

    python benchmarks/serve_load.py EXPORT_DIR_OR_TFLITE [--requests 200] [--threads 8] [--image PHOTO]

Starts the server in this process on 127.0.0.1 (a free port), POSTs one photo per request to /classify
and prints one line of numbers. Only loopback traffic; bounded in count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--image", help="photo to send (default: scikit-image's chelsea.png, 451x300)")
    args = ap.parse_args()

    import logging

    from werkzeug.serving import make_server

    from kft.serve import create_app, pick_model

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access-log line per request

    if args.image:
        image = Path(args.image)
    else:
        from kft.bench.clients import photo_dir

        image = photo_dir() / "chelsea.png"
    data = image.read_bytes()
    boundary = "kftload"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{image.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    model = pick_model(args.model)
    server = make_server("127.0.0.1", 0, create_app(model), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/classify"

    def one(_):
        req = urllib.request.Request(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        t = time.perf_counter()
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            return r.status, 1000 * (time.perf_counter() - t)

    one(0)  # warm-up: the first interpreter
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        results = list(pool.map(one, range(args.requests)))
    wall = time.perf_counter() - t0
    server.shutdown()
    ms = sorted(m for _, m in results)
    errors = sum(s != 200 for s, _ in results)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    print(f"{model.name}, {image.name} ({len(data) / 1e3:.0f} kB): {args.requests} requests, {args.threads} threads: "
          f"{errors} errors, p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, {args.requests / wall:.1f} req/s")


if __name__ == "__main__":
    main()
