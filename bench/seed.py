#!/usr/bin/env python3
"""Seeds a running proxyfleet for benchmarks, over loopback HTTP with keep-alive connections.

  seed.py users URL ADMIN_TOKEN COUNT TOKENS_FILE   create COUNT users, write their tokens
  seed.py gateways URL REGISTRY_TOKEN COUNT          register COUNT gateways in 200 cities
  seed.py webhooks SECRET COUNT USERS OUT            write COUNT signed Stripe events (distinct
                                                     ids, users 1..USERS) to OUT, one a line:
                                                     "<Stripe-Signature>\t<body>"
"""
import http.client
import json
import random
import sys
import threading
import urllib.parse

THREADS = 16


def worker(url, jobs, send):
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    for job in jobs:
        send(conn, job)
    conn.close()


def run(url, items, send):
    chunks = [items[i::THREADS] for i in range(THREADS)]
    threads = [threading.Thread(target=worker, args=(url, chunk, send)) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def cities():
    rng = random.Random(7)
    return [(f"City{i}", rng.uniform(-60, 70), rng.uniform(-180, 180)) for i in range(200)]


def seed_users(url, token, count, out):
    tokens = []
    lock = threading.Lock()

    def send(conn, i):
        body = json.dumps({"email": f"bench{i}@example.org"})
        conn.request("POST", "/api/v1/admin/users", body,
                     {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 201:
            raise SystemExit(f"create user {i}: {response.status} {data[:200]}")
        with lock:
            tokens.append(json.loads(data)["token"])

    run(url, list(range(count)), send)
    with open(out, "w") as f:
        f.write("\n".join(tokens) + "\n")


def seed_gateways(url, token, count):
    places = cities()

    def send(conn, i):
        name, lat, lon = places[i % len(places)]
        form = urllib.parse.urlencode({
            "name": f"gw{i}", "ip": "127.0.0.1", "port": 10000 + i % 50000, "role": "gateway",
            "city": name, "lat": f"{lat + random.uniform(-0.1, 0.1):.4f}",
            "lon": f"{lon + random.uniform(-0.1, 0.1):.4f}",
            "clients": random.randint(0, 150), "capacity": 100,
        })
        conn.request("POST", "/register", form,
                     {"Authorization": f"Bearer {token}", "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"register gw{i}: {response.status} {data[:200]}")

    run(url, list(range(count)), send)


def write_webhooks(secret, count, users, out):
    """Stripe's scheme: t=<now>,v1=hex(HMAC-SHA256(secret, "<t>.<body>"))."""
    import hashlib
    import hmac
    import time
    t = int(time.time())
    with open(out, "w") as f:
        for i in range(count):
            body = json.dumps({
                "id": f"evt_bench_{i}", "object": "event", "type": "payment_intent.succeeded",
                "data": {"object": {
                    "id": f"pi_bench_{i}", "object": "payment_intent", "amount": 499,
                    "amount_received": 499, "currency": "usd", "status": "succeeded",
                    "metadata": {"user_id": str(1 + i % users), "plan": "pro-1m"}}},
            }, separators=(",", ":"))
            mac = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
            f.write(f"t={t},v1={mac}\t{body}\n")


if __name__ == "__main__":
    if sys.argv[1] == "webhooks":
        write_webhooks(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        sys.exit(0)
    kind, url, token, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if kind == "users":
        seed_users(url, token, count, sys.argv[5])
    else:
        seed_gateways(url, token, count)
