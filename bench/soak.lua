-- wrk script for bench/soak.py: a mix of reads and writes on one server, counted by kind.
--
-- Each request is tagged with an X-Request-ID "soak:<kind>:<thread>:<n>", which userhub echoes
-- in its response: that is how response() knows which kind of request it answers (wrk tells it
-- nothing else), and how soak.py finds the requests in the server's access log.
--
-- Environment (set by soak.py):
--   SOAK_TOKENS    Bearer tokens of the seeded users, comma-separated
--   SOAK_USERS     their usernames, comma-separated (same order); all have SOAK_PASSWORD
--   SOAK_PASSWORD  the seeded users' password, for log-ins
--   SOAK_PREFIX    makes registered usernames unique to this run
--   SOAK_OUTPUT    where done() writes its JSON summary
--
-- Per-thread results are kept in flat tables of numbers and strings: wrk's thread:get() copies
-- those, but crashes on nested tables.

local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

-- name, weight (requests per 100), method, path, body kind, needs a token
local KINDS = {
  { "response-json", 20, "GET", "/response_json" },
  { "test-get", 15, "GET", "/test_get?user_name=%E5%BC%A0%E4%B8%89" },
  { "health", 10, "GET", "/api/v1/health" },
  { "me", 30, "GET", "/api/v1/users/me", nil, true },
  { "patch-me", 15, "PATCH", "/api/v1/users/me", "display_name", true },
  { "register", 5, "POST", "/api/v1/users", "register" },
  { "login", 5, "POST", "/api/v1/tokens", "credentials" },
}

local function split(text)
  local items = {}
  for item in string.gmatch(text or "", "[^,]+") do
    items[#items + 1] = item
  end
  return items
end

function init(args)
  counts = {}       -- "<kind> <class>" -> responses, e.g. "register 2xx"
  registered = {}   -- usernames a registration answered 201 for
  sent = 0
  tokens = split(os.getenv("SOAK_TOKENS"))
  users = split(os.getenv("SOAK_USERS"))
  password = os.getenv("SOAK_PASSWORD")
  prefix = (os.getenv("SOAK_PREFIX") or "s") .. id .. "n"
  -- A fixed, shuffled schedule of 100 slots per thread: the mix is exact, not left to chance.
  schedule = {}
  for _, kind in ipairs(KINDS) do
    for _ = 1, kind[2] do
      schedule[#schedule + 1] = kind
    end
  end
  math.randomseed(7919 * id)
  for i = #schedule, 2, -1 do
    local j = math.random(i)
    schedule[i], schedule[j] = schedule[j], schedule[i]
  end
end

function request()
  sent = sent + 1
  local kind = schedule[(sent - 1) % #schedule + 1]
  local name, method, path, body_kind, with_token = kind[1], kind[3], kind[4], kind[5], kind[6]
  local headers = { ["X-Request-ID"] = string.format("soak:%s:%d:%d", name, id, sent) }
  local who = sent % #users + 1
  local body = nil
  if with_token then
    headers["Authorization"] = "Bearer " .. tokens[who]
  end
  if body_kind == "register" then
    body = string.format('{"username":"%s%d","password":"%s"}', prefix, sent, password)
  elseif body_kind == "display_name" then
    body = string.format('{"display_name":"Soak %d"}', sent)
  elseif body_kind == "credentials" then
    body = string.format('{"username":"%s","password":"%s"}', users[who], password)
  end
  if body then
    headers["Content-Type"] = "application/json"
  end
  return wrk.format(method, path, headers, body)
end

function response(status, headers, body)
  local tag = headers["X-Request-ID"] or headers["x-request-id"] or ""
  local kind = string.match(tag, "^soak:([%w-]+):") or "untagged"
  local key = string.format("%s %dxx", kind, math.floor(status / 100))
  counts[key] = (counts[key] or 0) + 1
  if kind == "register" and status == 201 then
    registered[#registered + 1] = string.match(body, '"username":"([^"]+)"') or "?"
  end
end

local function quote(text)
  return '"' .. string.gsub(text, '[%c"\\]', "") .. '"'
end

function done(summary, latency, requests)
  local totals, names = {}, {}
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("counts")) do
      totals[key] = (totals[key] or 0) + count
    end
    for _, name in ipairs(thread:get("registered")) do
      names[#names + 1] = quote(name)
    end
  end
  local by_kind = {}
  for key, count in pairs(totals) do
    by_kind[#by_kind + 1] = string.format("%s:%d", quote(key), count)
  end
  local e = summary.errors
  local out = assert(io.open(os.getenv("SOAK_OUTPUT"), "w"))
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d,"non_2xx_3xx":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"mean_us":%.1f,"counts":{%s},"registered":[%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean, table.concat(by_kind, ","), table.concat(names, ",")))
  out:close()
end
