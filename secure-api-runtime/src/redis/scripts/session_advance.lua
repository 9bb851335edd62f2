-- Rotates a session: compare-and-set on its generation and current token hash.
-- KEYS[1]  the session's hash
-- ARGV[1]  the generation presented (decimal)
-- ARGV[2]  SHA-256 of the token presented (32 bytes)
-- ARGV[3]  the subject of the next grant (it must be the session's)
-- ARGV[4]  now, s (the caller's clock)
-- ARGV[5]  the next generation (decimal)
-- ARGV[6]  SHA-256 of the next token
-- ARGV[7]  the next grant (JSON)
-- ARGV[8]  the next idle end, s (capped here at the absolute end)
-- Returns 1 when rotated, 0 (nothing changed) when the session is gone, ended, or no
-- longer at that generation and hash: of two concurrent refreshes with one token, exactly
-- one gets 1.
local f = redis.call('HMGET', KEYS[1], 'gen', 'hash', 'sub', 'exp', 'abs')
if not f[1] then
  return 0
end
local now = tonumber(ARGV[4])
if tonumber(f[4]) <= now or f[1] ~= ARGV[1] or f[2] ~= ARGV[2] or f[3] ~= ARGV[3] then
  return 0
end
local exp = math.min(tonumber(ARGV[8]), tonumber(f[5]))
if exp <= now then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'gen', ARGV[5], 'hash', ARGV[6], 'grant', ARGV[7], 'exp', string.format('%.0f', exp))
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', (exp - now) * 1000))
return 1
