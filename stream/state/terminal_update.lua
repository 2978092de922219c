-- Add transactions to terminals' event strings (unless their record is there) and return the strings.
-- KEYS: one key per terminal. ARGV[1]: msgpack flat list of ops, two values each: key_index,
-- record (8 bytes);
-- ARGV[2]: retention, ARGV[3]: slack, in seconds.
-- Terminal string (key ending in ev3): a 4-byte count m, m fraud marks of 12 bytes {t_s of the
-- transaction (4), known since, t_s (4), id hash (4)} (terminal_mark_fraud.lua), then 8-byte event
-- records {t_s (4, LE), id hash (4)} sorted by time, ties in arrival order (the ev2 strings before
-- 2026-12-06's twenty-third session kept arrival order; `fraudstream migrate-records` sorts them
-- into ev3). An event is found again by its whole record: by string.find in a short string, else by
-- binary search on its second (a false match needs two transactions of the same second with equal
-- 32-bit hashes).
-- Each op costs O(log n) and each key O(n) once per call (read, merge, write), so a terminal with
-- hundreds of thousands of events does not slow every op down (stream/state/terminal_blobs.py
-- computes the aggregates from the returned strings with binary searches too).
-- After each added event, events older than it minus the retention (and older marks) are cut from
-- the stored string once the oldest event is `slack` older than that; returned strings are uncut.
-- Strings are stored whole with MSET (exact size; APPEND leaves spare capacity, see customer_update.lua).
-- Returns {msgpack list per op: 1 added, 0 found there, then each key's string}.
local W, M = 8, 12
local CHUNK = 4000  -- values per MGET or MSET: Lua's unpack takes up to ~8000
local ops = cmsgpack.unpack(ARGV[1])
local RET, SLACK = tonumber(ARGV[2]), tonumber(ARGV[3])
local sub, sunpack, concat = string.sub, struct.unpack, table.concat

-- per key: the string (header and marks, then sorted events), where its events start, how many it
-- holds; the records added (arrival order) and a set of them; the oldest time not cut; the cut bound
local str, head, count, new, oldest, bound = {}, {}, {}, {}, {}, {}
local fresh = {}  -- each record added by this call: its key's index (or a set of them)
local SHORT = 64  -- strings of up to this many events are searched by string.find (in C)

local function time_at(s, h, i) return sunpack('<I4', s, h + i * W + 1) end

-- whether the events of s (from h) hold this record
local function find_record(s, rec, h)
  local init = h + 1
  while true do
    local pos = string.find(s, rec, init, true)
    if not pos then return false end
    if (pos - 1 - h) % W == 0 then return true end
    init = pos + 1
  end
end

-- the first index in [lo, hi) whose time is >= t (`strict`: > t)
local function search(s, h, lo, hi, t, strict)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local x = time_at(s, h, mid)
    if x < t or (strict and x == t) then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- every key read with MGET and every changed one written with MSET (see customer_update.lua)
local stored = {}
for s = 1, #KEYS, CHUNK do
  local got = redis.call('MGET', unpack(KEYS, s, math.min(s + CHUNK - 1, #KEYS)))
  for j = 1, #got do stored[s + j - 1] = got[j] or '\0\0\0\0' end
end

local flags = {}
for n = 1, #ops / 2 do
  local k, rec = ops[2 * n - 1], ops[2 * n]
  local s = str[k]
  if s == nil then
    s = stored[k]
    str[k], head[k] = s, 4 + sunpack('<I4', s, 1) * M
    count[k] = (#s - head[k]) / W
    if count[k] > 0 then oldest[k] = time_at(s, head[k], 0) end
  end
  local h, c = head[k], count[k]
  local t = sunpack('<I4', rec, 1)
  local v = fresh[rec]
  local found = v == k or (type(v) == 'table' and v[k] ~= nil)
  if found then
  elseif c <= SHORT then
    found = find_record(s, rec, h)
  else
    local i = search(s, h, 0, c, t, false)
    while not found and i < c and time_at(s, h, i) == t do
      found = sub(s, h + i * W + 1, h + (i + 1) * W) == rec
      i = i + 1
    end
  end
  if found then
    flags[n] = 0
  else
    flags[n] = 1
    local added = new[k]
    if added == nil then added = {}; new[k] = added end
    added[#added + 1] = rec
    if v == nil then fresh[rec] = k  -- the same record at two terminals: a set of them
    elseif type(v) == 'table' then v[k] = true
    else fresh[rec] = {[v] = true, [k] = true} end
    if oldest[k] == nil or t < oldest[k] then oldest[k] = t end
    if oldest[k] < t - RET - SLACK then  -- per added event: independent of batching
      local b = t - RET
      if bound[k] == nil or b > bound[k] then bound[k] = b end
      -- the oldest event left: the first stored at or after the bound, or an added one
      local j = search(s, h, 0, c, bound[k], false)
      oldest[k] = j < c and time_at(s, h, j) or nil
      for _, r in ipairs(added) do
        local x = sunpack('<I4', r, 1)
        if x >= bound[k] and (oldest[k] == nil or x < oldest[k]) then oldest[k] = x end
      end
    end
  end
end

-- the string with the added records merged into its sorted events: each after the stored ones of its second
local function merged(s, h, c, added)
  local last = c > 0 and time_at(s, h, c - 1) or 0
  if #added == 1 and sunpack('<I4', added[1], 1) >= last then return s .. added[1] end
  local in_order = true
  for _, r in ipairs(added) do
    local t = sunpack('<I4', r, 1)
    if t < last then in_order = false; break end
    last = t
  end
  if in_order then return s .. concat(added) end  -- the common case: all after the stored
  local order = {}
  for a, r in ipairs(added) do order[a] = struct.pack('>I4I4', sunpack('<I4', r, 1), a) end
  table.sort(order)
  local parts, from = {sub(s, 1, h)}, 0
  for _, key in ipairs(order) do
    local t, a = struct.unpack('>I4I4', key)
    local at = search(s, h, from, c, t, true)
    if at > from then parts[#parts + 1] = sub(s, h + from * W + 1, h + at * W) end
    parts[#parts + 1] = added[a]
    from = at
  end
  if from < c then parts[#parts + 1] = sub(s, h + from * W + 1) end
  return concat(parts)
end

local out, sets = {cmsgpack.pack(flags)}, {}
for k = 1, #KEYS do
  local s, h = str[k], head[k]
  local whole = new[k] and merged(s, h, count[k], new[k]) or s
  if bound[k] ~= nil then
    local marks = {}
    for i = 0, (h - 4) / M - 1 do
      local mark = sub(s, 5 + i * M, 4 + (i + 1) * M)
      if sunpack('<I4', mark, 1) >= bound[k] then marks[#marks + 1] = mark end
    end
    local first = search(whole, h, 0, (#whole - h) / W, bound[k], false)
    sets[#sets + 1] = KEYS[k]
    sets[#sets + 1] = struct.pack('<I4', #marks) .. concat(marks) .. sub(whole, h + first * W + 1)
  elseif new[k] then
    sets[#sets + 1] = KEYS[k]
    sets[#sets + 1] = whole
  end
  out[k + 1] = whole
end
for s = 1, #sets, CHUNK do redis.call('MSET', unpack(sets, s, math.min(s + CHUNK - 1, #sets))) end
return out
