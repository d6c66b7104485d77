-- wrk script: heartbeats of 1,000 proxies at a set pace. Each connection waits BENCH_DELAY_MS
-- between requests (wrk's delay hook), so the rate is about connections * 1000 / delay.
local counter = 0
local token = os.getenv("BENCH_TOKEN") or "bench-token"
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "10")

request = function()
  counter = counter + 1
  local body = "name=p" .. (counter % 1000) .. "&ip=127.0.0.1&port=8443&country=DE&clients=" .. (counter % 200)
  return wrk.format("POST", "/register", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Bearer " .. token,
  }, body)
end

delay = function()
  return pause
end

dofile("bench/report.lua")
