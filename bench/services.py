"""Helper processes kept apart from the measured ones, so their CPU and memory are not counted there.

``python -m bench.services endpoint``: segsync's capture endpoint (``segsync.local.capture``), writing
what it accepts to /dev/null (it still inflates, parses, validates and re-serializes every message).
``python -m bench.services moto``: moto's server. Each prints ``{"url": ...}`` and then answers
``stats`` (its own CPU seconds, peak RSS, counters) and ``quit`` on stdin.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import peak_rss_mb


def main(kind: str) -> int:
    stats: Any
    if kind == "endpoint":
        from segsync.local.capture import CaptureServer

        server = CaptureServer(Path(os.devnull)).start()
        url = server.url

        def stats() -> dict[str, Any]:
            return {
                "requests": server.requests,
                "messages": server.messages,
                "dropped": server.dropped,
                "statuses": {str(k): v for k, v in server.statuses.items()},
            }

    elif kind == "moto":
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"

        def stats() -> dict[str, Any]:
            return {}

    else:
        print(f"unknown service {kind!r}", file=sys.stderr)
        return 2
    print(json.dumps({"url": url}), flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "stats":
            usage = os.times()
            reply = {**stats(), "cpu_s": round(usage.user + usage.system, 3), "peak_rss_mb": peak_rss_mb()}
            print(json.dumps(reply), flush=True)
        elif command == "quit":
            break
    started = time.monotonic()
    server.stop()
    print(json.dumps({"stopped_s": round(time.monotonic() - started, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
