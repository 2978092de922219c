-- Publish a signed checkpoint as the next version of a model, keeping the newest few versions.
-- KEYS: latest:<name>, ckpt:<name>, names, learner, pos:<name>.
-- ARGV: name, version, blob, owner ('' = no learner check), versions kept, label-stream position,
-- and '1' to restore (any version after the newest: Redis lost the ones between).
-- Returns the version; -1 when `owner` no longer holds the learner role; -2 when `version` is not
-- the next one (another was published first).
if ARGV[4] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[4] then return -1 end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local v = tonumber(ARGV[2])
if v ~= cur + 1 and not (ARGV[7] == '1' and v > cur) then return -2 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[5], ARGV[2], ARGV[6])
redis.call('SADD', KEYS[3], ARGV[1])
local oldest = v - tonumber(ARGV[5])
for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
  if tonumber(f) <= oldest then redis.call('HDEL', KEYS[2], f) redis.call('HDEL', KEYS[5], f) end
end
return v
