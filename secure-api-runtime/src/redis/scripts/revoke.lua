-- Records a revocation, never shortening one: KEYS[1] the entry (`revoked_at:until`,
-- seconds); ARGV[1] revoked_at (0 for a token or a session), ARGV[2] until, ARGV[3] now
-- (the caller's clock). The entry expires one second after `until`, when it can no longer
-- match a token that verifies.
local ra = tonumber(ARGV[1])
local untl = tonumber(ARGV[2])
local old = redis.call('GET', KEYS[1])
if old then
  local sep = string.find(old, ':', 1, true)
  if sep then
    ra = math.max(ra, tonumber(string.sub(old, 1, sep - 1)) or 0)
    untl = math.max(untl, tonumber(string.sub(old, sep + 1)) or 0)
  end
end
local ttl = (untl - tonumber(ARGV[3]) + 1) * 1000
redis.call('SET', KEYS[1], string.format('%.0f:%.0f', ra, untl), 'PX', string.format('%.0f', math.max(ttl, 1)))
return 1
