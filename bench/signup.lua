-- wrk script: POST /api/v1/admin/users with an e-mail address no other request uses (thread
-- number and counter), as a sign-up burst would. BENCH_ADMIN is the admin token.
local threads, counter = 0, 0
local token = os.getenv("BENCH_ADMIN") or "bench-admin"

setup = function(thread)
  thread:set("id", threads)
  threads = threads + 1
end

request = function()
  counter = counter + 1
  local body = string.format('{"email":"u%d-%d@example.org"}', id or 0, counter)
  return wrk.format("POST", "/api/v1/admin/users",
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end

dofile("bench/report.lua")
