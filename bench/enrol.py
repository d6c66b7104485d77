"""Enrols proxies p0..p{N-1} with the registry token and writes each one's secret.

    python3 bench/enrol.py URL REGISTRY_TOKEN COUNT OUT_FILE [FIRST]

Each line of OUT_FILE is `name secret`, as bench/heartbeat.lua (BENCH_SECRETS) and the
baseline (its fourth argument) read it. One keep-alive connection; a few seconds per 1,000.
"""
import http.client
import sys
import urllib.parse

url, token, count, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
parsed = urllib.parse.urlparse(url)
conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
lines = []
for i in range(first, first + count):
    name = f"p{i}"
    body = urllib.parse.urlencode({"name": name, "ip": "127.0.0.1", "port": "8443", "country": "DE"})
    conn.request("POST", "/register", body, {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/x-www-form-urlencoded",
    })
    response = conn.getresponse()
    response.read()
    secret = response.getheader("X-Proxy-Secret")
    if response.status != 200 or not secret:
        sys.exit(f"enrolling {name}: HTTP {response.status}, no secret")
    lines.append(f"{name} {secret}\n")
with open(out, "w") as f:
    f.writelines(lines)
print(f"enrolled {count} proxies")
