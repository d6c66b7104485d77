-- wrk script: heartbeats of 1,000 proxies, as form posts with the registry token.
-- Prints one machine-readable line: RESULT requests rps p50_ms p99_ms errors
local counter = 0
local token = os.getenv("BENCH_TOKEN") or "bench-token"

request = function()
  counter = counter + 1
  local body = "name=p" .. (counter % 1000) .. "&ip=127.0.0.1&port=8443&country=DE&clients=" .. (counter % 200)
  return wrk.format("POST", "/register", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %d %.0f %.3f %.3f %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
