-- Indexes a new session under its subject, before the session is stored (so that no
-- session ever exists that revoke-by-subject cannot find).
-- KEYS[1]  the subject's index: a sorted set of session ids (hex) scored by absolute end
-- ARGV[1]  the new session's id (hex)
-- ARGV[2]  its absolute end, s
-- ARGV[3]  now, s (the caller's clock)
-- ARGV[4]  the most sessions of one subject
-- Returns the ids dropped to keep the subject within its bound, oldest first: the caller
-- deletes their sessions.
local key = KEYS[1]
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[3])
local dropped = {}
local max = tonumber(ARGV[4])
while redis.call('ZCARD', key) >= max do
  local oldest = redis.call('ZRANGE', key, 0, 0)
  if #oldest == 0 then
    break
  end
  redis.call('ZREM', key, oldest[1])
  table.insert(dropped, oldest[1])
end
redis.call('ZADD', key, ARGV[2], ARGV[1])
local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
local left = tonumber(top[2]) - now
redis.call('PEXPIRE', key, string.format('%.0f', math.max(left, 1) * 1000))
return dropped
