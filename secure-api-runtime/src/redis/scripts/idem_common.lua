-- Shared by the idempotency scripts. Every script runs on one client's keys, all under the
-- client's hash tag (one Redis Cluster slot):
-- KEYS[1]  the record: `c`..fingerprint(32)..owner(16) for a claim (PX = the lease),
--          `d`..fingerprint(32)..completion for a completion (PX = the replay TTL)
-- KEYS[2]  `#live`: every record of the client, scored by its expiry (ms)
-- KEYS[3]  `#done`: the client's completions, scored by completion time (µs): eviction order
-- KEYS[4]  `#size`: bytes of each stored response, and their `total`
-- ARGV[1]  the prefix of the client's record keys (records evicted for room are named by it)
-- ARGV[2]  the record's member name in the indexes (its scope)
local rec, live, done, size = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local rec_prefix, member = ARGV[1], ARGV[2]
local clock = redis.call('TIME')
local now_us = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local now = math.floor(now_us / 1000)

local function n(x)
  return string.format('%.0f', x)
end

-- The owner of a claim record, or nil for a completion.
local function owner_of(v)
  if string.sub(v, 1, 1) ~= 'c' then
    return nil
  end
  return string.sub(v, 34, 49)
end

-- Forgets a completion's bytes and its place in the eviction order.
local function forget_done(m)
  local bytes = redis.call('HGET', size, m)
  if bytes then
    redis.call('HDEL', size, m)
    redis.call('HINCRBY', size, 'total', n(-tonumber(bytes)))
  end
  redis.call('ZREM', done, m)
end

-- Forgets the records whose PX has passed (Redis already dropped their keys).
local function prune()
  local bound = '(' .. n(now)
  local expired = redis.call('ZRANGEBYSCORE', live, '-inf', bound)
  if #expired > 0 then
    for _, m in ipairs(expired) do
      forget_done(m)
    end
    redis.call('ZREMRANGEBYSCORE', live, '-inf', bound)
  end
end

-- Drops another completed record of the client, to make room.
local function drop(m)
  redis.call('DEL', rec_prefix .. m)
  redis.call('ZREM', live, m)
  forget_done(m)
end

-- The indexes live exactly as long as the client's longest-lived record.
local function keep_indexes()
  local top = redis.call('ZRANGE', live, -1, -1, 'WITHSCORES')
  if #top == 0 then
    redis.call('DEL', live, done, size)
  else
    local at = n(tonumber(top[2]) + 1)
    redis.call('PEXPIREAT', live, at)
    redis.call('PEXPIREAT', done, at)
    redis.call('PEXPIREAT', size, at)
  end
end

-- Frees room for `fits()` by dropping the client's oldest completions, if `evict`.
local function make_room(fits, evict)
  while not fits() do
    if not evict then
      return false
    end
    local oldest = redis.call('ZRANGE', done, 0, 0)
    if #oldest == 0 then
      return false
    end
    drop(oldest[1])
  end
  return true
end
