-- Store scored records (feature vector + scores) per transaction id, trimmed by event time.
-- KEYS: per customer two keys of one slot: records hash, index sorted set (score = t_ms).
-- ARGV[1]: msgpack ops {key_index, txid, t_ms, payload}; ARGV[2]: retention in ms.
local ops = cmsgpack.unpack(ARGV[1])
local RET = tonumber(ARGV[2])
local newest = {}
for n = 1, #ops do
  local k, txid, t, payload = ops[n][1], ops[n][2], ops[n][3], ops[n][4]
  redis.call('HSET', KEYS[k], txid, payload)
  redis.call('ZADD', KEYS[k + 1], t, txid)
  if newest[k] == nil or t > newest[k] then newest[k] = t end
end
for k, t in pairs(newest) do
  local old = redis.call('ZRANGEBYSCORE', KEYS[k + 1], '-inf', '(' .. string.format('%.0f', t - RET))
  if #old > 0 then
    redis.call('HDEL', KEYS[k], unpack(old))
    redis.call('ZREM', KEYS[k + 1], unpack(old))
  end
end
return #ops
