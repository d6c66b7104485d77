-- wrk script: GET /api/v1/config as random users, tokens read from BENCH_TOKENS (one a line).
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do
  if #line > 0 then tokens[#tokens + 1] = line end
end
math.randomseed(os.time())

request = function()
  local token = tokens[math.random(#tokens)]
  return wrk.format("GET", "/api/v1/config", { ["Authorization"] = "Bearer " .. token })
end

-- BENCH_DELAY_MS (optional): each connection waits that long between requests (a set pace).
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  delay = function() return pause end
end

dofile("bench/report.lua")
