-- Strict sliding window acquire: at most `limit` admissions in any window, exactly.
-- KEYS[1]  the client's log (a list of admission times in µs, oldest first)
-- ARGV[1]  window, µs
-- ARGV[2]  limit (the policy's count, at most 10,000)
-- ARGV[3]  cost
-- Returns {allowed (0|1), remaining, µs until every admission has left the window,
--          µs until a retry can pass (-1: never)}.
-- Admissions that left the window are dropped from the front; an allowed request appends
-- `cost` entries and sets the TTL to just after the newest leaves the window. A denial
-- only drops expired entries.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local key = KEYS[1]
while true do
  local first = redis.call('LINDEX', key, 0)
  if not first or tonumber(first) + window > now then
    break
  end
  redis.call('LPOP', key)
end
local len = redis.call('LLEN', key)
local function expiry()
  local last = redis.call('LINDEX', key, -1)
  if not last then
    return 0
  end
  return math.max(tonumber(last) + window - now, 0)
end
if len + cost <= limit then
  if cost > 0 then
    local stamp = string.format('%.0f', now)
    for _ = 1, cost do
      redis.call('RPUSH', key, stamp)
    end
    redis.call('PEXPIRE', key, string.format('%.0f', math.ceil(window / 1000) + 1))
  end
  return {1, limit - len - cost, expiry(), 0}
end
local retry = -1
if cost <= limit then
  local must_expire = len + cost - limit
  local oldest = redis.call('LINDEX', key, must_expire - 1)
  retry = 0
  if oldest then
    retry = math.max(tonumber(oldest) + window - now, 0)
  end
  retry = math.max(retry, 1)
end
return {0, limit - math.min(len, limit), expiry(), retry}
