-- Store scored records (feature vector + scores) as fields of hashes, one hash per hour of event
-- time (and shard, on a cluster), with a time to live that each write renews (a record lives at
-- least that long; a label deletes its record when it takes it).
-- KEYS: the hashes. ARGV[1]: msgpack list, per key, of its {field, payload, field, payload, ...};
-- ARGV[2]: time to live in ms. Returns the number of records written.
local per_key = cmsgpack.unpack(ARGV[1])
local ttl = ARGV[2]
local CHUNK = 4000  -- values per HSET: Lua's unpack takes up to ~8000
local n = 0
for i = 1, #KEYS do
  local fv = per_key[i]
  for s = 1, #fv, CHUNK do redis.call('HSET', KEYS[i], unpack(fv, s, math.min(s + CHUNK - 1, #fv))) end
  redis.call('PEXPIRE', KEYS[i], ttl)
  n = n + #fv / 2
end
return n
