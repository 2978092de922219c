-- Insert transactions into customers' event lists and return window aggregates, atomically.
-- KEYS: per customer two keys of one hash slot: events (string, msgpack), scored records (hash).
-- ARGV[1]: msgpack list of ops {key_index, t_ms, cents, terminal_hash, txid, lat|nil, lon|nil}
--          where key_index points at the customer's events key (its records key is key_index + 1).
-- ARGV[2..7]: 30 d, 7 d, 1 d, 1 h, 10 min windows and the retention, in ms (windows nested).
-- Events: one flat msgpack array, S = 5 values per event {t_ms, cents, terminal_hash, txid,
-- false | {lat, lon}}, sorted by (t_ms, arrival): no table per event, so loading is cheap.
-- Returns msgpack list per op: {0 new | 1 duplicate | 2 id reused with other content, stored record
-- or false, aggregates...}; the aggregates mirror MemoryStore.customer_aggregates exactly.
local S = 5
local ops = cmsgpack.unpack(ARGV[1])
local W30, W7, W1, H1, M10, RET =
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local lists, dirty = {}, {}

local function load(k)
  local ev = lists[k]
  if ev == nil then
    local raw = redis.call('GET', KEYS[k])
    if raw then ev = cmsgpack.unpack(raw) else ev = {} end
    lists[k] = ev
  end
  return ev
end

-- sum of the cents of events a..b
local function cents(ev, a, b)
  local s = 0
  for i = a, b do s = s + ev[(i - 1) * S + 2] end
  return s
end

-- aggregates of event p over itself and the events before it
local function aggregates(ev, p)
  local base = (p - 1) * S
  local t, term = ev[base + 1], ev[base + 3]
  -- window starts: first index whose time is > t - window (windows are nested)
  local i = p
  while i >= 1 and ev[(i - 1) * S + 1] > t - M10 do i = i - 1 end
  local i10 = i + 1
  while i >= 1 and ev[(i - 1) * S + 1] > t - H1 do i = i - 1 end
  local ih = i + 1
  while i >= 1 and ev[(i - 1) * S + 1] > t - W1 do i = i - 1 end
  local i1 = i + 1
  while i >= 1 and ev[(i - 1) * S + 1] > t - W7 do i = i - 1 end
  local i7 = i + 1
  while i >= 1 and ev[(i - 1) * S + 1] > t - W30 do i = i - 1 end
  local i30 = i + 1
  local sh = cents(ev, ih, p)
  local s1 = sh + cents(ev, i1, ih - 1)
  local s7 = s1 + cents(ev, i7, i1 - 1)
  local s30 = s7 + cents(ev, i30, i7 - 1)
  local own = ev[base + 2]
  local sq, seen, hlat, hlon, hn = own * own, 0, 0, 0, 0
  for j = i30, p - 1 do  -- forward, like MemoryStore: the same float sums
    local b = (j - 1) * S
    local c = ev[b + 2]
    sq = sq + c * c
    if ev[b + 3] == term then seen = 1 end
    local co = ev[b + 5]
    if co then hlat = hlat + co[1]; hlon = hlon + co[2]; hn = hn + 1 end
  end
  local terms, nterms = {}, 0
  for j = i1, p do
    local h = ev[(j - 1) * S + 3]
    if not terms[h] then terms[h] = true; nterms = nterms + 1 end
  end
  local prev_dt, plat, plon, pcoord = -1, 0, 0, 0
  if p > 1 then
    prev_dt = t - ev[base - S + 1]
    local co = ev[base]
    if co then plat = co[1]; plon = co[2]; pcoord = 1 end
  end
  return {p - i1 + 1, s1, p - i7 + 1, s7, p - i30 + 1, s30, sq, p - ih + 1, sh, p - i10 + 1,
          prev_dt, nterms, seen, hlat, hlon, hn, plat, plon, pcoord}
end

local out = {}
for n = 1, #ops do
  local op = ops[n]
  local k, t, txid = op[1], op[2], op[5]
  local ev = load(k)
  local count = #ev / S
  local p = nil
  for i = count, 1, -1 do
    if ev[(i - 1) * S + 4] == txid then p = i; break end
  end
  local dup, stored = 0, false
  if p then
    local b = (p - 1) * S
    if ev[b + 1] ~= t or ev[b + 2] ~= op[3] or ev[b + 3] ~= op[4] then
      dup = 2  -- the id is already used by a different transaction: change nothing
    else
      dup = 1
      local rec = redis.call('HGET', KEYS[k + 1], txid)
      if rec then stored = rec end
    end
  else
    p = count + 1
    while p > 1 and ev[(p - 2) * S + 1] > t do p = p - 1 end
    for j = count * S, (p - 1) * S + 1, -1 do ev[j + S] = ev[j] end
    local b = (p - 1) * S
    ev[b + 1] = t; ev[b + 2] = op[3]; ev[b + 3] = op[4]; ev[b + 4] = txid
    if op[6] ~= nil then ev[b + 5] = {op[6], op[7]} else ev[b + 5] = false end
    dirty[k] = true
  end
  local row = aggregates(ev, p)
  table.insert(row, 1, stored)
  table.insert(row, 1, dup)
  out[n] = row
end

for k, _ in pairs(dirty) do
  local ev = lists[k]
  local size = #ev
  local cut = ev[size - S + 1] - RET
  local first = 1
  while first * S <= size and ev[(first - 1) * S + 1] < cut do first = first + 1 end
  local drop = (first - 1) * S
  if drop > 0 then
    for j = 1, size - drop do ev[j] = ev[j + drop] end
    for j = size - drop + 1, size do ev[j] = nil end
  end
  redis.call('SET', KEYS[k], cmsgpack.pack(ev))
end
return cmsgpack.pack(out)
