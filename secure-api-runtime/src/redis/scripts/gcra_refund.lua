-- GCRA refund: gives back `cost` emission intervals, never past a full bucket.
-- KEYS[1]  the client's GCRA key
-- ARGV[1]  emission interval, µs
-- ARGV[2]  cost
-- A key without a record is left alone; a record that becomes a full bucket is deleted.
local stored = redis.call('GET', KEYS[1])
if not stored then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = math.max(tonumber(stored) - tonumber(ARGV[2]) * tonumber(ARGV[1]), now)
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  local ttl_ms = math.ceil((tat - now) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', string.format('%.0f', ttl_ms))
end
return 1
