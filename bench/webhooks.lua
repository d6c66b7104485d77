-- wrk script: POST /api/v1/stripe/webhook with pre-signed events from BENCH_EVENTS (one a line,
-- "<Stripe-Signature>\t<body>"). Threads take interleaved lines, so no event is sent twice
-- while the file lasts (a repeat would be answered as already processed).
local events = {}
for line in io.lines(os.getenv("BENCH_EVENTS")) do
  local tab = line:find("\t", 1, true)
  if tab then events[#events + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) } end
end
-- wrk has no call that tells a thread how many there are: run.sh passes its -t as BENCH_THREADS.
local threads, counter = 0, 0
local stride = tonumber(os.getenv("BENCH_THREADS") or "1")

setup = function(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

request = function()
  local index = (offset or 0) + counter * stride
  counter = counter + 1
  local event = events[(index % #events) + 1]
  return wrk.format("POST", "/api/v1/stripe/webhook",
    { ["Stripe-Signature"] = event[1], ["Content-Type"] = "application/json" }, event[2])
end

dofile("bench/report.lua")
