-- wrk script for bench/run.py: optional method, body and token from the environment, and a
-- JSON summary line at the end (throughput, latency percentiles, errors).
--   BENCH_METHOD  GET (default), POST, PATCH
--   BENCH_BODY    register | display_name | credentials   (a JSON body; new values per request)
--   BENCH_TOKEN   a Bearer token sent with every request
--   BENCH_PREFIX  makes generated usernames unique to this run
--   BENCH_USER / BENCH_PASSWORD   the account for "credentials"
local method = os.getenv("BENCH_METHOD") or "GET"
local body_kind = os.getenv("BENCH_BODY")
local token = os.getenv("BENCH_TOKEN")
local prefix = os.getenv("BENCH_PREFIX") or "b"
local counter = 0

if token then
  wrk.headers["Authorization"] = "Bearer " .. token
end
wrk.method = method

local function next_body()
  counter = counter + 1
  if body_kind == "register" then
    return string.format('{"username":"%s%d","password":"bench-password-1"}', prefix, counter)
  elseif body_kind == "display_name" then
    return string.format('{"display_name":"Bench %d"}', counter)
  else
    return string.format('{"username":"%s","password":"%s"}',
      os.getenv("BENCH_USER"), os.getenv("BENCH_PASSWORD"))
  end
end

if body_kind then
  wrk.headers["Content-Type"] = "application/json"
  if body_kind == "credentials" then
    wrk.body = next_body()  -- the same body every time: wrk builds the request once
  else
    request = function()
      return wrk.format(nil, nil, nil, next_body())
    end
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"non_2xx":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
