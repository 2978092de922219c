-- Acquire or renew the learner role. KEYS[1]: learner; ARGV: owner, time to live in ms.
-- Returns 1 renewed, 2 acquired, 0 held by another consumer.
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
