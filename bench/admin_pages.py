"""Times the admin panel's list pages against a running server: each page fetched N times in a
row over one keep-alive connection, as the panel does. Prints one Markdown table row per page:
| page | path | bytes | p50 ms | max ms |.
usage: python3 bench/admin_pages.py PORT ADMIN_TOKEN N PATH...  (PATH as `label=path`)"""
import http.client
import statistics
import sys
import time

port, token, runs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for spec in sys.argv[4:]:
    label, path = spec.split("=", 1)
    times, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            sys.exit(f"{path}: HTTP {response.status}: {body[:200]!r}")
        size = len(body)
    print(f"| {label} | `{path}` | {size:,} | {statistics.median(times):.1f} | {max(times):.1f} |")
