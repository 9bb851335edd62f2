-- Stores a session: KEYS[1] the session's hash; ARGV[1] its TTL in ms; ARGV[2..] field,
-- value pairs.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
