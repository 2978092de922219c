-- Insert transactions into customers' event lists and return window aggregates, atomically.
-- KEYS: per customer three keys of one hash slot: events, scored records (hash), coordinates.
-- ARGV[1]: msgpack list of ops {key_index, t_ms, cents, terminal_hash, txid, id_hash (6 bytes),
--          lat|nil, lon|nil}; key_index points at the events key (records + 1, coordinates + 2).
-- ARGV[2..7]: 30 d, 7 d, 1 d, 1 h, 10 min windows and the retention, in ms (windows nested).
--
-- Events key: a 14-byte header '<i6d' (cents and squared cents of the trimmed events), then one
-- 31-byte record per event '<i6i6dI4c6B' {t_ms, cumulative cents, cumulative squared cents,
-- terminal hash, id hash, has coordinates}, sorted by (t_ms, arrival). Window sums are differences
-- of cumulative sums and window bounds binary searches, so an update reads a few dozen bytes
-- instead of decoding the whole history; an in-order event is appended.
-- Coordinates key (only customers with coordinates): 28-byte records '<i6c6dd' {t_ms, id hash,
-- lat, lon} of the events that have them, in the same order.
-- Returns msgpack list per op: {0 new | 1 duplicate | 2 id reused with other content, stored record
-- or false, aggregates...}; the aggregates mirror MemoryStore.customer_aggregates exactly.
local H, W, G = 14, 31, 28
local REC, GEO = '<i6i6dI4c6B', '<i6c6dd'
local REBASE_CENTS, REBASE_SQUARES = 2 ^ 46, 2 ^ 51  -- keep cumulative sums exact ('i6'; doubles < 2^53)
local ops = cmsgpack.unpack(ARGV[1])
local W30, W7, W1, H1, M10, RET =
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local data, dirty = {}, {}

local function load(i, empty)
  local s = data[i]
  if s == nil then
    s = redis.call('GET', KEYS[i]) or empty
    data[i] = s
  end
  return s
end

local function count(s, header, width) return (#s - header) / width end
local function time_at(s, header, width, i) return (struct.unpack('<i6', s, header + (i - 1) * width + 1)) end

-- cumulative cents and squared cents through event i (0: the header's base)
local function cums(s, i)
  if i == 0 then return struct.unpack('<i6d', s, 1) end
  return struct.unpack('<i6d', s, H + (i - 1) * W + 7)
end

-- first index in [lo, hi] whose time is > bound (hi + 1 if none); times are sorted
local function first_after(s, header, width, bound, lo, hi)
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    if time_at(s, header, width, mid) > bound then hi = mid - 1 else lo = mid + 1 end
  end
  return lo
end

-- first index in [from, to] whose field at byte `offset` of the record equals `needle`
local function find_field(s, header, width, needle, offset, from, to)
  if from > to then return nil end
  local init, limit = header + (from - 1) * width + offset + 1, header + (to - 1) * width + offset + 1
  while true do
    local pos = string.find(s, needle, init, true)
    if not pos or pos > limit then return nil end
    local rel = pos - 1 - header - offset
    if rel % width == 0 then return rel / width + 1 end
    init = pos + 1
  end
end

-- aggregates of event p over itself and the events before it; gp: its coordinates record or nil
local function aggregates(s, p, geo, gp)
  local t, cum_p, sq_p, term = struct.unpack(REC, s, H + (p - 1) * W + 1)
  -- short windows hold few events: scan back from p; binary search for the long ones
  local i = p
  while i >= 1 and time_at(s, H, W, i) > t - M10 do i = i - 1 end
  local i10 = i + 1
  while i >= 1 and time_at(s, H, W, i) > t - H1 do i = i - 1 end
  local ih = i + 1
  while i >= 1 and time_at(s, H, W, i) > t - W1 do i = i - 1 end
  local i1 = i + 1
  local i30 = first_after(s, H, W, t - W30, 1, i1)
  local i7 = first_after(s, H, W, t - W7, i30, i1)
  local c30, q30 = cums(s, i30 - 1)
  local c7 = cums(s, i7 - 1)
  local c1 = cums(s, i1 - 1)
  local ch = cums(s, ih - 1)
  local terms, nterms = {}, 0
  for j = i1, p do
    local h = struct.unpack('<I4', s, H + (j - 1) * W + 21)
    if not terms[h] then terms[h] = true; nterms = nterms + 1 end
  end
  local seen = 0
  if find_field(s, H, W, struct.pack('<I4', term), 20, i30, p - 1) then seen = 1 end
  local prev_dt = -1
  if p > 1 then prev_dt = t - time_at(s, H, W, p - 1) end
  local hlat, hlon, hn, plat, plon, pcoord = 0, 0, 0, 0, 0, 0
  if gp then  -- coordinate aggregates only matter (and are only computed) for events with coordinates
    local g30 = first_after(geo, 0, G, t - W30, 1, gp)
    for j = g30, gp - 1 do  -- forward, like MemoryStore: the same float sums
      local _, _, lat, lon = struct.unpack(GEO, geo, (j - 1) * G + 1)
      hlat = hlat + lat; hlon = hlon + lon; hn = hn + 1
    end
    if p > 1 and struct.unpack('<B', s, H + (p - 2) * W + 31) == 1 then  -- the previous event has coordinates
      local _, _, lat, lon = struct.unpack(GEO, geo, (gp - 2) * G + 1)
      plat, plon, pcoord = lat, lon, 1
    end
  end
  return {p - i1 + 1, cum_p - c1, p - i7 + 1, cum_p - c7, p - i30 + 1, cum_p - c30, sq_p - q30,
          p - ih + 1, cum_p - ch, p - i10 + 1, prev_dt, nterms, seen, hlat, hlon, hn, plat, plon, pcoord}
end

-- s with `rec` inserted before index p and `dc`, `dq` added to the cumulative sums after it
local function splice(s, p, rec, dc, dq)
  local n = count(s, H, W)
  if p > n then return s .. rec end
  local parts = {string.sub(s, 1, H + (p - 1) * W), rec}
  for j = p, n do
    local tj, cj, qj, hj, idj, fj = struct.unpack(REC, s, H + (j - 1) * W + 1)
    parts[#parts + 1] = struct.pack(REC, tj, cj + dc, qj + dq, hj, idj, fj)
  end
  return table.concat(parts)
end

local out = {}
for n = 1, #ops do
  local op = ops[n]
  local k, t, cents, term, txid, idh = op[1], op[2], op[3], op[4], op[5], op[6]
  local s = load(k, struct.pack('<i6d', 0, 0))
  local geo, gp = nil, nil
  local p = find_field(s, H, W, idh, 24, 1, count(s, H, W))
  local dup, stored = 0, false
  if p then
    local tp, cum_p, _, hp, _, flag = struct.unpack(REC, s, H + (p - 1) * W + 1)
    if tp ~= t or cum_p - cums(s, p - 1) ~= cents or hp ~= term then
      dup = 2  -- the id is already used by a different transaction: change nothing
    else
      dup = 1
      local rec = redis.call('HGET', KEYS[k + 1], txid)
      if rec then stored = rec end
    end
    if flag == 1 then
      geo = load(k + 2, '')
      gp = find_field(geo, 0, G, idh, 6, 1, count(geo, 0, G))
    end
  else
    p = first_after(s, H, W, t, 1, count(s, H, W))
    local c0, q0 = cums(s, p - 1)
    local has = 0
    if op[7] ~= nil then has = 1 end
    s = splice(s, p, struct.pack(REC, t, c0 + cents, q0 + cents * cents, term, idh, has), cents, cents * cents)
    data[k] = s
    dirty[k] = true
    if has == 1 then
      geo = load(k + 2, '')
      gp = first_after(geo, 0, G, t, 1, count(geo, 0, G))
      local rec = struct.pack(GEO, t, idh, op[7], op[8])
      geo = string.sub(geo, 1, (gp - 1) * G) .. rec .. string.sub(geo, (gp - 1) * G + 1)
      data[k + 2] = geo
      dirty[k + 2] = true
    end
  end
  local row = aggregates(s, p, geo, gp)
  table.insert(row, 1, stored)
  table.insert(row, 1, dup)
  out[n] = row
end

-- trim events older than the newest minus the retention; the header keeps their sums
for i, _ in pairs(dirty) do
  local s = data[i]
  local header, width = H, W
  if KEYS[i]:sub(-4) == ':geo' then header, width = 0, G end
  local n = count(s, header, width)
  local cut = time_at(s, header, width, n) - RET
  local first = 1
  if time_at(s, header, width, 1) < cut then first = first_after(s, header, width, cut - 1, 1, n) end
  if first > 1 then
    if header == 0 then
      s = string.sub(s, (first - 1) * G + 1)
    else
      local bc, bq = cums(s, first - 1)
      s = struct.pack('<i6d', bc, bq) .. string.sub(s, H + (first - 1) * W + 1)
    end
  end
  if header > 0 then
    local bc, bq = cums(s, 0)
    if bq > REBASE_SQUARES or bc > REBASE_CENTS then  -- rare: restart the cumulative sums from zero
      local parts = {struct.pack('<i6d', 0, 0)}
      for j = 1, count(s, H, W) do
        local tj, cj, qj, hj, idj, fj = struct.unpack(REC, s, H + (j - 1) * W + 1)
        parts[#parts + 1] = struct.pack(REC, tj, cj - bc, qj - bq, hj, idj, fj)
      end
      s = table.concat(parts)
    end
  end
  redis.call('SET', KEYS[i], s)
end
return cmsgpack.pack(out)
