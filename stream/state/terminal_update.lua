-- Append transactions to terminals' event strings (unless their id is there) and return the strings.
-- KEYS: one key per terminal. ARGV[1]: msgpack flat list of ops, two values each: key_index,
-- record (8 bytes);
-- ARGV[2]: retention, ARGV[3]: slack, in seconds.
-- Terminal string: a 4-byte count m, m fraud marks of 12 bytes {t_s of the transaction (4),
-- known since, t_s (4), id hash (4)} (terminal_mark_fraud.lua), then 8-byte event records in
-- arrival order {t_s (4, LE), id hash (4)}. An event is found again by its whole record (time and
-- id hash: a false match needs two transactions of the same second with equal 32-bit hashes). Aggregates are computed by the client from the prefix
-- of events up to each op (stream/state/blobs.py); a mark counts for ops at or after its time.
-- After each append, leading events older than it minus the retention (and older marks) are cut
-- from the stored string once the oldest event is `slack` older than that; returned strings are uncut.
-- Strings are stored whole with MSET (exact size; APPEND leaves spare capacity, see customer_update.lua).
-- Returns {msgpack list per op of its event index, then each key's string}.
local W, M = 8, 12
local CHUNK = 4000  -- values per MGET or MSET: Lua's unpack takes up to ~8000
local ops = cmsgpack.unpack(ARGV[1])
local RET, SLACK = tonumber(ARGV[2]), tonumber(ARGV[3])
local find, sub, sunpack = string.find, string.sub, struct.unpack
-- per key: the string, where its events start, how many were appended, how many are cut, the time
-- before which marks are dropped
local ev, head, added, cut, bound = {}, {}, {}, {}, {}

local function find_record(s, rec, from)
  local init = from + 1
  while true do
    local pos = find(s, rec, init, true)
    if not pos then return nil end
    if (pos - 1 - from) % W == 0 then return (pos - 1 - from) / W end
    init = pos + 1
  end
end

-- every key read with MGET and every changed one written with MSET (see customer_update.lua)
local stored = {}
for s = 1, #KEYS, CHUNK do
  local got = redis.call('MGET', unpack(KEYS, s, math.min(s + CHUNK - 1, #KEYS)))
  for j = 1, #got do stored[s + j - 1] = got[j] or '\0\0\0\0' end
end

local index = {}
for n = 1, #ops / 2 do
  local k, rec = ops[2 * n - 1], ops[2 * n]
  local s = ev[k]
  if s == nil then
    s = stored[k]
    ev[k] = s
    head[k] = 4 + sunpack('<I4', s, 1) * M
    added[k], cut[k] = 0, 0
  end
  local h = head[k]
  local idx = find_record(s, rec, h)
  if idx then
    index[n] = idx
  else
    index[n] = (#s - h) / W
    s = s .. rec
    ev[k] = s
    added[k] = added[k] + 1
    local t = sunpack('<I4', rec, 1)
    if sunpack('<I4', s, h + cut[k] * W + 1) < t - RET - SLACK then  -- per append: independent of batching
      while h + cut[k] * W < #s and sunpack('<I4', s, h + cut[k] * W + 1) < t - RET do cut[k] = cut[k] + 1 end
      bound[k] = t - RET
    end
  end
end

local out, sets = {cmsgpack.pack(index)}, {}
for k = 1, #KEYS do
  local s, h = ev[k], head[k]
  if cut[k] > 0 then
    local marks = {}
    for i = 0, (h - 4) / M - 1 do
      local mark = sub(s, 5 + i * M, 4 + (i + 1) * M)
      if sunpack('<I4', mark, 1) >= bound[k] then marks[#marks + 1] = mark end
    end
    sets[#sets + 1] = KEYS[k]
    sets[#sets + 1] = struct.pack('<I4', #marks) .. table.concat(marks) .. sub(s, h + cut[k] * W + 1)
  elseif added[k] > 0 then
    sets[#sets + 1] = KEYS[k]
    sets[#sets + 1] = s
  end
  out[k + 1] = s
end
for s = 1, #sets, CHUNK do redis.call('MSET', unpack(sets, s, math.min(s + CHUNK - 1, #sets))) end
return out
