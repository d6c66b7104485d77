-- wrk script: prints one machine-readable line when the run ends (used alone for plain GETs,
-- and by the other scripts through dofile):
-- RESULT requests rps p50_ms p99_ms errors
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format("RESULT %d %.0f %.3f %.3f %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end
