-- Mark transactions of terminals as fraudulent (labels), idempotently.
-- KEYS: one events key per terminal (see terminal_update.lua for the layout).
-- ARGV[1]: msgpack ops {key_index, id_hash}. Sets the event's fraud byte in place.
-- Returns the number of events marked now (already marked or unknown ones are not counted).
local W, ID, IDLEN = 12, 6, 5
local ops = cmsgpack.unpack(ARGV[1])
local data, marked = {}, 0

local function find_id(s, idh)
  local init = ID + 1
  while true do
    local pos = string.find(s, idh, init, true)
    if not pos then return nil end
    if (pos - 1 - ID) % W == 0 then return (pos - 1 - ID) / W end
    init = pos + 1
  end
end

for n = 1, #ops do
  local k, idh = ops[n][1], ops[n][2]
  local s = data[k]
  if s == nil then
    s = redis.call('GET', KEYS[k]) or ''
    data[k] = s
  end
  local idx = find_id(s, idh)
  if idx and string.byte(s, idx * W + W) == 0 then
    redis.call('SETRANGE', KEYS[k], idx * W + W - 1, '\1')
    data[k] = string.sub(s, 1, idx * W + W - 1) .. '\1' .. string.sub(s, idx * W + W + 1)
    marked = marked + 1
  end
end
return marked
