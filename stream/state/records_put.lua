-- Store scored records (feature vector + scores), one string key per transaction, with a TTL.
-- KEYS: the records' keys (one hash slot: the customers'). ARGV[1]: msgpack list of payloads in
-- KEYS order; ARGV[2]: time to live in ms (records are deleted when their label takes them).
local payloads = cmsgpack.unpack(ARGV[1])
local ttl = ARGV[2]
for i = 1, #KEYS do redis.call('SET', KEYS[i], payloads[i], 'PX', ttl) end
return #KEYS
