-- wrk script: heartbeats of BENCH_PROXIES proxies (default 1,000) in turn, as form posts with
-- the registry token.
local counter = 0
local token = os.getenv("BENCH_TOKEN") or "bench-token"
local proxies = tonumber(os.getenv("BENCH_PROXIES") or "1000")

request = function()
  counter = counter + 1
  local body = "name=p" .. (counter % proxies) .. "&ip=127.0.0.1&port=8443&country=DE&clients=" .. (counter % 200)
  return wrk.format("POST", "/register", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

dofile("bench/report.lua")
