-- Append transactions to terminals' event strings (unless their id is there) and return the strings.
-- KEYS: one events key per terminal. ARGV[1]: msgpack list of ops {key_index, record (13 bytes)};
-- ARGV[2]: retention, ARGV[3]: slack, in ms.
-- Events string: 12-byte records in arrival order: t_ms (6, LE), id hash (5), fraud 0/1 (1; set by
-- terminal_mark_fraud.lua when the label arrives). Aggregates are computed by the client from the
-- prefix up to each event (stream/state/blobs.py). After each append, leading events older than it
-- minus the retention are cut from the stored string once the oldest is `slack` older than that;
-- the returned strings are uncut.
-- Returns {msgpack list per op of its record index in the returned string, then each key's string}.
local W, ID, IDLEN = 12, 6, 5
local ops = cmsgpack.unpack(ARGV[1])
local RET, SLACK = tonumber(ARGV[2]), tonumber(ARGV[3])
local ev, added = {}, {}

local function find_id(s, idh)
  local init = ID + 1
  while true do
    local pos = string.find(s, idh, init, true)
    if not pos then return nil end
    if (pos - 1 - ID) % W == 0 then return (pos - 1 - ID) / W end
    init = pos + 1
  end
end

-- ev[k]: the string as loaded plus this call's appends (returned: it holds every op's prefix);
-- cut[k]: leading records to drop from the stored string
local index, cut = {}, {}
for n = 1, #ops do
  local k, rec = ops[n][1], ops[n][2]
  local s = ev[k]
  if s == nil then
    s = redis.call('GET', KEYS[k]) or ''
    ev[k] = s
    added[k], cut[k] = {}, 0
  end
  local idx = find_id(s, string.sub(rec, ID + 1, ID + IDLEN))
  if idx then
    index[n] = idx
  else
    index[n] = #s / W
    s = s .. rec
    ev[k] = s
    table.insert(added[k], rec)
    local t = struct.unpack('<i6', rec, 1)
    if struct.unpack('<i6', s, cut[k] * W + 1) < t - RET - SLACK then  -- per append: independent of batching
      while cut[k] * W < #s and struct.unpack('<i6', s, cut[k] * W + 1) < t - RET do cut[k] = cut[k] + 1 end
    end
  end
end

local out = {cmsgpack.pack(index)}
for k = 1, #KEYS do
  if cut[k] > 0 or #added[k] > 0 then  -- SET, not APPEND: an appended string keeps up to twice its size allocated
    redis.call('SET', KEYS[k], string.sub(ev[k], cut[k] * W + 1))
  end
  out[k + 1] = ev[k]
end
return out
