-- Append transactions to terminals' event strings (unless their id is there) and return the strings.
-- KEYS: one key per terminal. ARGV[1]: msgpack list of ops {key_index, record (11 bytes)};
-- ARGV[2]: retention, ARGV[3]: slack, in ms.
-- Terminal string: a 4-byte count m, m fraud marks of 17 bytes {t_ms of the transaction (6),
-- known since, t_ms (6), id hash (5)} (terminal_mark_fraud.lua), then 11-byte event records in
-- arrival order {t_ms (6, LE), id hash (5)}. Aggregates are computed by the client from the prefix
-- of events up to each op (stream/state/blobs.py); a mark counts for ops at or after its time.
-- After each append, leading events older than it minus the retention (and older marks) are cut
-- from the stored string once the oldest event is `slack` older than that; returned strings are uncut.
-- Strings are stored whole with SET (exact size; APPEND leaves spare capacity, see customer_update.lua).
-- Returns {msgpack list per op of its event index, then each key's string}.
local W, ID, IDLEN, M = 11, 6, 5, 17
local ops = cmsgpack.unpack(ARGV[1])
local RET, SLACK = tonumber(ARGV[2]), tonumber(ARGV[3])
local ev, head, added, cut, bound = {}, {}, {}, {}, {}

local function find_id(s, idh, from)
  local init = from + ID + 1
  while true do
    local pos = string.find(s, idh, init, true)
    if not pos then return nil end
    if (pos - 1 - from - ID) % W == 0 then return (pos - 1 - from - ID) / W end
    init = pos + 1
  end
end

local index = {}
for n = 1, #ops do
  local k, rec = ops[n][1], ops[n][2]
  local s = ev[k]
  if s == nil then
    s = redis.call('GET', KEYS[k]) or '\0\0\0\0'
    ev[k] = s
    head[k] = 4 + struct.unpack('<I4', s, 1) * M
    added[k], cut[k] = {}, 0
  end
  local h = head[k]
  local idx = find_id(s, string.sub(rec, ID + 1, ID + IDLEN), h)
  if idx then
    index[n] = idx
  else
    index[n] = (#s - h) / W
    s = s .. rec
    ev[k] = s
    table.insert(added[k], rec)
    local t = struct.unpack('<i6', rec, 1)
    if struct.unpack('<i6', s, h + cut[k] * W + 1) < t - RET - SLACK then  -- per append: independent of batching
      while h + cut[k] * W < #s and struct.unpack('<i6', s, h + cut[k] * W + 1) < t - RET do cut[k] = cut[k] + 1 end
      bound[k] = t - RET
    end
  end
end

local out = {cmsgpack.pack(index)}
for k = 1, #KEYS do
  local s, h = ev[k], head[k]
  if cut[k] > 0 then
    local marks = {}
    for i = 0, (h - 4) / M - 1 do
      local mark = string.sub(s, 5 + i * M, 4 + (i + 1) * M)
      if struct.unpack('<i6', mark, 1) >= bound[k] then marks[#marks + 1] = mark end
    end
    redis.call('SET', KEYS[k], struct.pack('<I4', #marks) .. table.concat(marks) .. string.sub(s, h + cut[k] * W + 1))
  elseif #added[k] > 0 then
    redis.call('SET', KEYS[k], s)
  end
  out[k + 1] = s
end
return out
