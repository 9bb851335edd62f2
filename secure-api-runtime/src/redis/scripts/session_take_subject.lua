-- Takes a subject's index: KEYS[1]. Returns every session id and deletes the index in
-- one step, so that a session indexed concurrently is either returned here or stays
-- indexed.
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return ids
