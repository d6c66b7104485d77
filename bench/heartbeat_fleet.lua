-- wrk script: heartbeats of a fleet of BENCH_PROXIES proxies (default 10,000) in turn, each
-- with a changing client count, as form posts with the registry token.
local counter = 0
local token = os.getenv("BENCH_TOKEN") or "bench-token"
local proxies = tonumber(os.getenv("BENCH_PROXIES") or "10000")

setup = function(thread)
  thread:set("offset", math.random(0, proxies - 1))
end

request = function()
  counter = counter + 1
  local name = (counter + (offset or 0)) % proxies
  local body = "name=g" .. name .. "&ip=127.0.0.1&port=8443&country=DE&clients=" .. (counter % 200)
  return wrk.format("POST", "/register", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

dofile("bench/report.lua")
