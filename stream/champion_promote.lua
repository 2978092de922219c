-- Make ARGV[1] the champion; the former champion becomes a challenger. KEYS: champion, challengers.
-- Returns the former champion (nil: none).
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
if old and old ~= ARGV[1] then redis.call('SADD', KEYS[2], old) end
return old
