-- wrk script for benches/load/run.sh: POST /api/users with a valid JSON body and a random
-- client address in X-Forwarded-For on every request.
--
-- The address is a random public IPv4 address from 11.0.0.0 to 99.255.255.254 (about 1.5e9
-- addresses, none private, loopback or CGNAT), so that secure-api's per-client limit
-- (anonymous tier: 10/s per IP) never refuses a request: the load test measures the full
-- stack on the allow path. XFF_POOL=n (environment) draws from the first n addresses of
-- 11.0.0.0/8 instead, so that clients come back (lookups instead of inserts in the limiter).
--
-- Every request carries a new Idempotency-Key (users_api's endpoint is `idempotent`, which
-- requires one): a bare sf-token, a random per-thread prefix and a counter, so that no key is
-- ever reused and every request runs the handler. bare_users ignores both headers.
--
-- Counts the responses that are not 2xx (and 429s and 503s separately) per thread and prints one
-- machine-readable RESULT line at the end.

local body = '{"username":"alice_01","email":"alice@example.com","age":30}'
local headers = { ["Content-Type"] = "application/json" }
local pool = tonumber(os.getenv("XFF_POOL") or "0") or 0

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

-- A per-thread random prefix for the Idempotency-Key values (unique across runs).
local prefix = ""
local counter = 0

function init(args)
  local f = assert(io.open("/dev/urandom", "rb"))
  local bytes = f:read(8)
  f:close()
  local seed = 0
  for i = 1, #bytes do
    prefix = prefix .. string.format("%02x", bytes:byte(i))
    seed = (seed * 256 + bytes:byte(i)) % 2147483647
  end
  prefix = "k" .. prefix .. "t" .. id .. "-"
  math.randomseed(seed)
  non2xx = 0
  n429 = 0
  n503 = 0
  responses = 0
end

local random = math.random
local format = string.format

local function client_ip()
  if pool > 0 then
    local n = random(0, pool - 1)
    return format("11.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  end
  return format("%d.%d.%d.%d", random(11, 99), random(0, 255), random(0, 255), random(1, 254))
end

function request()
  counter = counter + 1
  headers["X-Forwarded-For"] = client_ip()
  headers["Idempotency-Key"] = prefix .. counter
  return wrk.format("POST", "/api/users", headers, body)
end

function response(status, hdrs, resp_body)
  responses = responses + 1
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    if status == 429 then
      n429 = n429 + 1
    elseif status == 503 then
      n503 = n503 + 1
    end
  end
end

function done(summary, latency, requests)
  local bad, too_many, unavailable, seen = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    bad = bad + t:get("non2xx")
    too_many = too_many + t:get("n429")
    unavailable = unavailable + t:get("n503")
    seen = seen + t:get("responses")
  end
  local e = summary.errors
  io.write(format(
    "RESULT rps=%.1f requests=%d responses=%d non2xx=%d n429=%d n503=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests / (summary.duration / 1e6), summary.requests, seen, bad, too_many, unavailable,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
