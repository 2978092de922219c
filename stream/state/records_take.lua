-- Fetch and delete scored records (each is returned once).
-- KEYS: per customer two keys of one slot: records hash, index sorted set.
-- ARGV[1]: msgpack ops {key_index, txid}. Returns msgpack list of payload or false.
local ops = cmsgpack.unpack(ARGV[1])
local out = {}
for n = 1, #ops do
  local k, txid = ops[n][1], ops[n][2]
  local rec = redis.call('HGET', KEYS[k], txid)
  if rec then
    redis.call('HDEL', KEYS[k], txid)
    redis.call('ZREM', KEYS[k + 1], txid)
    out[n] = rec
  else
    out[n] = false
  end
end
return cmsgpack.pack(out)
