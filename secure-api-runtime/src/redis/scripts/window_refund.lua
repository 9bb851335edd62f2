-- Strict sliding window refund: forgets the `cost` newest admissions.
-- KEYS[1]  the client's log
-- ARGV[1]  window, µs
-- ARGV[2]  cost
-- A key without a log is left alone; the TTL is moved back to just after the newest
-- remaining admission leaves the window (an empty list is deleted by Redis).
if tonumber(ARGV[2]) < 1 or redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('RPOP', KEYS[1], ARGV[2])
local last = redis.call('LINDEX', KEYS[1], -1)
if last then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local left = tonumber(last) + tonumber(ARGV[1]) - now
  if left <= 0 then
    redis.call('DEL', KEYS[1])
  else
    redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.ceil(left / 1000) + 1))
  end
end
return 1
