-- GCRA acquire: one decision, atomically, on the server's clock.
-- KEYS[1]  the client's GCRA key (a string: the theoretical arrival time, TAT, in µs)
-- ARGV[1]  emission interval, µs (the policy's period / count, rounded up)
-- ARGV[2]  burst
-- ARGV[3]  cost
-- Returns {allowed (0|1), slack µs, µs until full, µs until a retry can pass (-1: never)}.
-- A denial writes nothing. An admission stores the new TAT with a TTL that ends just
-- after it, when the bucket is full again and the key carries no information.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
-- Numbers past 2^53 (absurd policies) are capped: Lua numbers are doubles.
local function capped(x)
  return math.min(x, 9007199254740992)
end
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then
  tat = math.max(tonumber(stored), now)
end
local horizon = now + burst * interval
local new_tat = tat + cost * interval
if new_tat <= horizon then
  if new_tat > now then
    local ttl_ms = capped(math.ceil((new_tat - now) / 1000) + 1)
    redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
  end
  return {1, capped(horizon - new_tat), capped(new_tat - now), 0}
end
local retry = -1
if cost <= burst then
  retry = capped(new_tat - horizon)
end
return {0, capped(math.max(horizon - tat, 0)), capped(tat - now), retry}
