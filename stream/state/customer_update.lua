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
local MANY = 32  -- a key with this many ops in the call is busy (see below)
local ops = cmsgpack.unpack(ARGV[1])
local RET, SLACK = tonumber(ARGV[2]), tonumber(ARGV[3])
local find, sub, byte, sunpack, concat = string.find, string.sub, string.byte, struct.unpack, table.concat
-- per key: the string (as loaded, plus this call's appends), the coordinates string, counts of
-- appended events and coordinates
local ev, geo, added, added_geo = {}, {}, {}, {}
-- A busy key (a card with `MANY` ops in the call) would cost O(n) an op: a search of its string
-- for each id and a copy of it for each append. Its ids are put in a table once instead (`ids`),
-- and its appends collected (`adds`, `geo_adds`) and joined to the string loaded (`nbase` records)
-- once, at the end.
local ids, adds, geo_adds, nbase = {}, {}, {}, {}

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
local nops = {}
for n = 1, #ops, 3 do
  local k = ops[n]
  nops[k] = (nops[k] or 0) + 1
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

-- (string, offset) of key k's record i (0-based)
local function record_at(k, i)
  local a = adds[k]
  if a == nil or i < nbase[k] then return ev[k], i * W end
  return a[i - nbase[k] + 1], 0
end

-- cut[k], cut_geo[k]: leading records to drop from what is stored
local results, cut, cut_geo = {}, {}, {}
for n = 1, #ops / 3 do
  local k, rec, g = ops[3 * n - 2], ops[3 * n - 1], ops[3 * n]
  local s = ev[k]
  if s == nil then
    s = stored[k]
    ev[k] = s
    added[k], added_geo[k], cut[k], cut_geo[k] = 0, 0, 0, 0
    if nops[k] >= MANY then
      local own = {}
      for i = #s / W - 1, 0, -1 do own[sub(s, i * W + ID + 1, i * W + ID + IDLEN)] = i end  -- the first wins
      ids[k], adds[k], geo_adds[k], nbase[k] = own, {}, {}, #s / W
    end
  end
  if g and geo[k] == nil then geo[k] = redis.call('GET', KEYS[k + 1]) or '' end
  local idh = sub(rec, ID + 1, ID + IDLEN)
  local busy = ids[k]
  local idx
  if busy then idx = busy[idh] else idx = find_id(s, idh) end
  if idx then
    local status = 1
    local r, o = record_at(k, idx)
    -- the same time, cents (without the coordinates bit) and terminal, or another transaction
    if sub(r, o + 1, o + 8) ~= sub(rec, 1, 8) or byte(r, o + 9) % 128 ~= byte(rec, 9) % 128
       or sub(r, o + 10, o + ID) ~= sub(rec, 10, ID) then status = 2 end
    results[2 * n - 1], results[2 * n] = status, idx
  else
    local total  -- records after this append
    if busy then
      local a = adds[k]
      total = nbase[k] + #a
      a[#a + 1] = rec
      busy[idh] = total
      if g then geo_adds[k][#geo_adds[k] + 1] = g end
    else
      total = #s / W
      ev[k] = s .. rec
      if g then geo[k] = geo[k] .. g end
    end
    results[2 * n - 1], results[2 * n] = 0, total
    total = total + 1
    added[k] = added[k] + 1
    if g then added_geo[k] = added_geo[k] + 1 end
    -- after each append (so the result does not depend on how events are batched): cut the leading
    -- events older than this one minus the retention, once the oldest is `slack` older than that
    local t = sunpack('<I4', rec, 1)
    local r, o = record_at(k, cut[k])
    if sunpack('<I4', r, o + 1) < t - RET - SLACK then
      while cut[k] < total do
        r, o = record_at(k, cut[k])
        if sunpack('<I4', r, o + 1) >= t - RET then break end
        cut_geo[k] = cut_geo[k] + math.floor(byte(r, o + 9) / 128)
        cut[k] = cut[k] + 1
      end
    end
  end
end
for k, a in pairs(adds) do  -- a busy key's appends, joined once
  if #a > 0 then ev[k] = ev[k] .. concat(a) end
  if #geo_adds[k] > 0 then geo[k] = geo[k] .. concat(geo_adds[k]) end
end
-- ev[k] is what is returned: the string as loaded plus this call's appends (every op's prefix is in
-- it, also when leading events are cut for storage)

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
