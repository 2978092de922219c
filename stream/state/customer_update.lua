-- Append transactions to customers' event strings (unless their id is there) and return the strings.
-- KEYS: per customer two keys of one hash slot: events, coordinates.
-- ARGV[1]: msgpack flat list of ops, three values each: key_index, record (17 bytes), coordinates
--          (8 bytes) or false (flat: no table per op to build);
--          key_index points at the events key (coordinates: + 1).
-- ARGV[2]: retention, ARGV[3]: slack, in seconds.
-- Events string: 17-byte records in arrival order: t_s (4, LE), cents (5, LE; its top bit: has
-- coordinates), terminal hash (3), id hash (5). Coordinates string: 8 bytes for each event that
-- has them, in the same order. Window aggregates are computed by the client (stream/state/blobs.py) from the
-- prefix of the string up to each event, i.e. the events that had arrived when it did.
-- After each append, leading events older than it minus the retention are cut from the stored
-- string once the oldest is `slack` older than that (so that not every append cuts). Strings are stored whole
-- with (M)SET, not APPEND: an appended Redis string keeps up to its length again in spare capacity
-- (30-day handbook state per customer 1,745 -> 1,217 bytes). The returned strings are uncut: they
-- hold every op's prefix.
-- Returns {msgpack flat list, per op its status and its record index in the returned string, then
-- per key its events string and its coordinates string (false when not read)}; status 0 new, 1 duplicate,
-- 2 the id is already used by a transaction with another time, amount or terminal (nothing changed).
local W, G, ID, IDLEN = 17, 8, 12, 5
local CHUNK = 4000  -- values per MGET or MSET: Lua's unpack takes up to ~8000
local ops = cmsgpack.unpack(ARGV[1])
local RET, SLACK = tonumber(ARGV[2]), tonumber(ARGV[3])
local find, sub, byte, sunpack = string.find, string.sub, string.byte, struct.unpack
-- per key: the string, the coordinates string, counts of appended events and coordinates
local ev, geo, added, added_geo = {}, {}, {}, {}

-- Every events key is read with MGET and every changed key written with MSET: one command per
-- chunk instead of one per key (on 1,500 handbook customers' keys, a GET and a SET took ~3.1 us
-- of the server's time per key, MGET and MSET ~2.0 us).
local stored = {}
do
  local names = {}
  for i = 1, #KEYS, 2 do names[#names + 1] = KEYS[i] end
  for s = 1, #names, CHUNK do
    local got = redis.call('MGET', unpack(names, s, math.min(s + CHUNK - 1, #names)))
    for j = 1, #got do stored[2 * (s + j - 1) - 1] = got[j] or '' end
  end
end

local function find_id(s, idh)
  local init = ID + 1
  while true do
    local pos = find(s, idh, init, true)
    if not pos then return nil end
    if (pos - 1 - ID) % W == 0 then return (pos - 1 - ID) / W end
    init = pos + 1
  end
end

-- ev[k]: the string as loaded plus this call's appends (what is returned: every op's prefix is in
-- it, also when leading events are cut for storage); cut[k], cut_geo[k]: leading records to drop
local results, cut, cut_geo = {}, {}, {}
for n = 1, #ops / 3 do
  local k, rec, g = ops[3 * n - 2], ops[3 * n - 1], ops[3 * n]
  local s = ev[k]
  if s == nil then
    s = stored[k]
    ev[k] = s
    added[k], added_geo[k], cut[k], cut_geo[k] = 0, 0, 0, 0
  end
  if g and geo[k] == nil then geo[k] = redis.call('GET', KEYS[k + 1]) or '' end
  local idx = find_id(s, sub(rec, ID + 1, ID + IDLEN))
  if idx then
    local status, o = 1, idx * W
    -- the same time, cents (without the coordinates bit) and terminal, or another transaction
    if sub(s, o + 1, o + 8) ~= sub(rec, 1, 8) or byte(s, o + 9) % 128 ~= byte(rec, 9) % 128
       or sub(s, o + 10, o + ID) ~= sub(rec, 10, ID) then status = 2 end
    results[2 * n - 1], results[2 * n] = status, idx
  else
    results[2 * n - 1], results[2 * n] = 0, #s / W
    s = s .. rec
    ev[k] = s
    added[k] = added[k] + 1
    if g then
      geo[k] = geo[k] .. g
      added_geo[k] = added_geo[k] + 1
    end
    -- after each append (so the result does not depend on how events are batched): cut the leading
    -- events older than this one minus the retention, once the oldest is `slack` older than that
    local t = sunpack('<I4', rec, 1)
    if sunpack('<I4', s, cut[k] * W + 1) < t - RET - SLACK then
      while cut[k] * W < #s and sunpack('<I4', s, cut[k] * W + 1) < t - RET do
        cut_geo[k] = cut_geo[k] + math.floor(byte(s, cut[k] * W + 9) / 128)
        cut[k] = cut[k] + 1
      end
    end
  end
end

local out, sets = {cmsgpack.pack(results)}, {}
local function set(key, value)
  sets[#sets + 1] = key
  sets[#sets + 1] = value
end
for i = 1, #KEYS, 2 do
  if cut[i] > 0 then
    set(KEYS[i], sub(ev[i], cut[i] * W + 1))
    if cut_geo[i] > 0 or added_geo[i] > 0 then
      if geo[i] == nil then geo[i] = redis.call('GET', KEYS[i + 1]) or '' end
      set(KEYS[i + 1], sub(geo[i], cut_geo[i] * G + 1))
    end
  elseif added[i] > 0 then
    set(KEYS[i], ev[i])
    if added_geo[i] > 0 then set(KEYS[i + 1], geo[i]) end
  end
  out[#out + 1] = ev[i]
  out[#out + 1] = geo[i] or false
end
for s = 1, #sets, CHUNK do redis.call('MSET', unpack(sets, s, math.min(s + CHUNK - 1, #sets))) end
return out
