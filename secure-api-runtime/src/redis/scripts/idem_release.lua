-- Release: ARGV[3] owner. Deletes the owner's claim so that a retry runs again.
-- Returns 1, or 0 when the record is not the owner's claim.
local v = redis.call('GET', rec)
if not v or owner_of(v) ~= ARGV[3] then
  return 0
end
redis.call('DEL', rec)
redis.call('ZREM', live, member)
keep_indexes()
return 1
