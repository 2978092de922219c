-- Each partition's newest event time at the offset about to be committed (see newest_times.py).
-- KEYS: one sorted set per partition; ARGV[1]: members kept per key, ARGV[2]: time to live (ms),
-- then per key its next offset (the score) and its member.
local kept, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[1 + 2 * i], ARGV[2 + 2 * i])
  redis.call('ZREMRANGEBYRANK', key, 0, -kept - 1)
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
