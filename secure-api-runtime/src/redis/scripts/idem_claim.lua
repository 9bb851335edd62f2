-- Claim: ARGV[3] fingerprint (32 bytes), ARGV[4] owner (16 bytes), ARGV[5] lease ms,
-- ARGV[6] the client's record quota, ARGV[7] `1` to evict the client's oldest completions
-- when at the quota.
-- Returns {0} acquired, {1} in flight, {2, record} completed, {3} mismatch, {4} full.
prune()
local v = redis.call('GET', rec)
if v then
  if string.sub(v, 2, 33) ~= ARGV[3] then
    return {3}
  end
  if owner_of(v) then
    return {1}
  end
  return {2, v}
end
if redis.call('ZSCORE', live, member) then
  -- Counted already (a record Redis dropped early): the new claim takes its place.
  forget_done(member)
else
  local quota = tonumber(ARGV[6])
  local fits = function()
    return redis.call('ZCARD', live) < quota
  end
  if not make_room(fits, ARGV[7] == '1') then
    return {4}
  end
end
local lease = tonumber(ARGV[5])
redis.call('SET', rec, 'c' .. ARGV[3] .. ARGV[4], 'NX', 'PX', n(lease))
redis.call('ZADD', live, n(now + lease), member)
keep_indexes()
return {0}
