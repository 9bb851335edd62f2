-- Ends a session: KEYS[1] the session's hash. Returns its subject (so that the caller can
-- drop it from the subject's index), or false when there was none.
local subject = redis.call('HGET', KEYS[1], 'sub')
if not subject then
  return false
end
redis.call('DEL', KEYS[1])
return subject
