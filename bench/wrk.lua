-- wrk script for bench/run.py and bench/under_load.py: optional method, body and token from the
-- environment, and a JSON summary line at the end (throughput, latency percentiles, errors).
--   BENCH_METHOD        GET (default), POST, PATCH
--   BENCH_BODY          register | display_name | credentials  (a JSON body; new values per request)
--   BENCH_STATIC_BODY   a fixed body sent with every request (a reference app's log-in form),
--   BENCH_CONTENT_TYPE  and its Content-Type (default application/json)
--   BENCH_TOKEN         a token sent with every request, as
--   BENCH_TOKEN_HEADER  this header (default Authorization)
--   BENCH_TOKEN_PREFIX  after this prefix (default "Bearer "; "" for Flask-Security's header)
--   BENCH_PREFIX        makes generated usernames unique to this run
--   BENCH_USER / BENCH_PASSWORD   the account for "credentials"
--   BENCH_COUNT_STATUSES  when set, every response's status is tallied ("statuses" in the
--                       summary; costs wrk a Lua call per response, so only where it is needed)
local method = os.getenv("BENCH_METHOD") or "GET"
local body_kind = os.getenv("BENCH_BODY")
local static_body = os.getenv("BENCH_STATIC_BODY")
local token = os.getenv("BENCH_TOKEN")
local prefix = os.getenv("BENCH_PREFIX") or "b"
local counter = 0
local threads = {}

if token then
  local header = os.getenv("BENCH_TOKEN_HEADER") or "Authorization"
  wrk.headers[header] = (os.getenv("BENCH_TOKEN_PREFIX") or "Bearer ") .. token
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

if static_body then
  wrk.headers["Content-Type"] = os.getenv("BENCH_CONTENT_TYPE") or "application/json"
  wrk.body = static_body
elseif body_kind then
  wrk.headers["Content-Type"] = "application/json"
  if body_kind == "credentials" then
    wrk.body = next_body()  -- the same body every time: wrk builds the request once
  else
    request = function()
      return wrk.format(nil, nil, nil, next_body())
    end
  end
end

if os.getenv("BENCH_COUNT_STATUSES") then
  setup = function(thread)
    table.insert(threads, thread)
  end
  init = function(args)
    statuses = {}  -- "<status>" -> responses; flat, so thread:get() can copy it
    first_5xx = ""  -- the start of the first 5xx answer's body: what the server said
  end
  response = function(status, headers, body)
    local key = tostring(status)
    statuses[key] = (statuses[key] or 0) + 1
    if status >= 500 and first_5xx == "" then
      first_5xx = key .. " " .. string.sub(body or "", 1, 160)
    end
  end
end

done = function(summary, latency, requests)
  local totals, parts, sample = {}, {}, ""
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("statuses")) do
      totals[key] = (totals[key] or 0) + count
    end
    if sample == "" then
      sample = thread:get("first_5xx")
    end
  end
  for key, count in pairs(totals) do
    parts[#parts + 1] = string.format('"%s":%d', key, count)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"non_2xx":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"statuses":{%s},"first_5xx":"%s"}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(parts, ","), (string.gsub(sample, '[%c"\\]', ""))))
end
