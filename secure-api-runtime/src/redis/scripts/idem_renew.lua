-- Renew: ARGV[3] owner, ARGV[4] lease ms. Extends the owner's claim to the lease from now
-- (never shortens it). Returns 1, or 0 when the record is not the owner's claim.
local v = redis.call('GET', rec)
if not v or owner_of(v) ~= ARGV[3] then
  return 0
end
local lease = tonumber(ARGV[4])
if redis.call('PTTL', rec) < lease then
  redis.call('PEXPIRE', rec, n(lease))
  redis.call('ZADD', live, 'GT', n(now + lease), member)
  keep_indexes()
end
return 1
