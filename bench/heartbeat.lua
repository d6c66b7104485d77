-- wrk script: heartbeats of BENCH_PROXIES proxies (default 1,000) p0, p1... in turn, as form
-- posts, each with its own secret from BENCH_SECRETS (lines `name secret`, written by
-- bench/enrol.py); without that file, with the token BENCH_TOKEN. With BENCH_DELAY_MS, each
-- connection waits that long between requests (wrk's delay hook), so the rate is about
-- connections * 1000 / delay.
local counter = 0
local token = os.getenv("BENCH_TOKEN") or "bench-token"
local proxies = tonumber(os.getenv("BENCH_PROXIES") or "1000")
local secrets = {}
local file = os.getenv("BENCH_SECRETS")
if file then
  for line in io.lines(file) do
    local name, secret = line:match("^(%S+) (%S+)$")
    if name then secrets[name] = secret end
  end
end

request = function()
  counter = counter + 1
  local name = "p" .. (counter % proxies)
  local body = "name=" .. name .. "&ip=127.0.0.1&port=8443&country=DE&clients=" .. (counter % 200)
  return wrk.format("POST", "/register", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Bearer " .. (secrets[name] or token),
  }, body)
end

local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pause then
  delay = function()
    return pause
  end
end

dofile("bench/report.lua")
