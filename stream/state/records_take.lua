-- Scored records (fields of the hour hashes of records_put.lua), by ARGV[1]: 'take' fetches and
-- deletes (each is returned once), 'keep' fetches, 'peek' fetches and gives the milliseconds the
-- hash has left to live, 'drop' deletes.
-- KEYS: the hashes. ARGV[2]: msgpack list, per key, of its fields.
-- Returns per key the list of payloads in field order, false where absent ('peek': {payloads, pttl};
-- 'drop': the number deleted).
local mode = ARGV[1]
local per_key = cmsgpack.unpack(ARGV[2])
local CHUNK = 4000  -- fields per call: Lua's unpack takes up to ~8000 values

-- `command` on key with all of `fields`, in chunks; returns each chunk's reply
local function chunked(command, key, fields)
  local replies = {}
  for s = 1, #fields, CHUNK do
    replies[#replies + 1] = redis.call(command, key, unpack(fields, s, math.min(s + CHUNK - 1, #fields)))
  end
  return replies
end

local out = {}
for i = 1, #KEYS do
  local fields, key = per_key[i], KEYS[i]
  if mode == 'drop' then
    local n = 0
    for _, deleted in ipairs(chunked('HDEL', key, fields)) do n = n + deleted end
    out[i] = n
  else
    local got = {}
    for _, part in ipairs(chunked('HMGET', key, fields)) do
      for j = 1, #part do got[#got + 1] = part[j] end
    end
    if mode == 'take' then chunked('HDEL', key, fields) end
    if mode == 'peek' then got = {got, redis.call('PTTL', key)} end
    out[i] = got
  end
end
return out
