-- Complete: ARGV[3] owner, ARGV[4] the completion (encoded by the caller), ARGV[5] its
-- bytes (0 for a not-replayable marker), ARGV[6] TTL ms, ARGV[7] the client's byte quota,
-- ARGV[8] `1` to evict the client's oldest completions for room.
-- Returns 1 completed, 0 not the owner's claim (nothing written), 2 no room.
prune()
local v = redis.call('GET', rec)
if not v or owner_of(v) ~= ARGV[3] then
  return 0
end
local bytes = tonumber(ARGV[5])
if bytes > 0 then
  local quota = tonumber(ARGV[7])
  if bytes > quota then
    return 2
  end
  local fits = function()
    return (tonumber(redis.call('HGET', size, 'total')) or 0) + bytes <= quota
  end
  if not make_room(fits, ARGV[8] == '1') then
    return 2
  end
end
local ttl = tonumber(ARGV[6])
redis.call('SET', rec, 'd' .. string.sub(v, 2, 33) .. ARGV[4], 'PX', n(ttl))
redis.call('ZADD', live, n(now + ttl), member)
redis.call('ZADD', done, n(now_us), member)
if bytes > 0 then
  redis.call('HSET', size, member, n(bytes))
  redis.call('HINCRBY', size, 'total', n(bytes))
end
keep_indexes()
return 1
