-- wrk script: POST /api/v1/admin/users with an e-mail address no other request uses (thread
-- number and counter), as a sign-up burst would. BENCH_ADMIN is the admin token.
local threads, counter = 0, 0
local token = os.getenv("BENCH_ADMIN") or "bench-admin"
-- Each run's addresses differ from the last's (a warm-up run comes first).
local run = os.getenv("BENCH_RUN") or tostring(os.time())

setup = function(thread)
  thread:set("id", threads)
  threads = threads + 1
end

request = function()
  counter = counter + 1
  local body = string.format('{"email":"u%s-%d-%d@example.org"}', run, id or 0, counter)
  return wrk.format("POST", "/api/v1/admin/users",
    { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }, body)
end

dofile("bench/report.lua")
