-- Insert transactions into customers' event lists and return window aggregates, atomically.
-- KEYS: per customer two keys of one hash slot: events (string, msgpack list), scored records (hash).
-- ARGV[1]: msgpack list of ops {key_index, t_ms, cents, terminal_hash, txid, lat|nil, lon|nil}
--          where key_index points at the customer's events key (its records key is key_index + 1).
-- ARGV[2..7]: 30 d, 7 d, 1 d, 1 h, 10 min windows and the retention, in ms.
-- Event: {t_ms, cents, terminal_hash, txid[, lat, lon]}, kept sorted by (t_ms, arrival).
-- Returns msgpack list per op: {0 new | 1 duplicate | 2 id reused with other content, stored record
-- or false, aggregates...}; the
-- aggregates mirror MemoryStore.customer_aggregates in memory.py exactly.
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

local function aggregates(ev, p)
  local cur = ev[p]
  local t, term = cur[1], cur[3]
  local nb1, s1, nb7, s7, nb30, s30, sq30, nbh, sh, nb10 = 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
  local terms, nterms, seen = {}, 0, 0
  local hlat, hlon, hn = 0, 0, 0
  for i = p, 1, -1 do
    local e = ev[i]
    local dt = t - e[1]
    if dt >= W30 then break end
    local c = e[2]
    nb30 = nb30 + 1; s30 = s30 + c; sq30 = sq30 + c * c
    if dt < W7 then nb7 = nb7 + 1; s7 = s7 + c end
    if dt < W1 then
      nb1 = nb1 + 1; s1 = s1 + c
      if not terms[e[3]] then terms[e[3]] = true; nterms = nterms + 1 end
    end
    if dt < H1 then nbh = nbh + 1; sh = sh + c end
    if dt < M10 then nb10 = nb10 + 1 end
    if i < p then
      if e[3] == term then seen = 1 end
      if e[5] ~= nil then hlat = hlat + e[5]; hlon = hlon + e[6]; hn = hn + 1 end
    end
  end
  local prev_dt, plat, plon, pcoord = -1, 0, 0, 0
  if p > 1 then
    local prev = ev[p - 1]
    prev_dt = t - prev[1]
    if prev[5] ~= nil then plat = prev[5]; plon = prev[6]; pcoord = 1 end
  end
  return {nb1, s1, nb7, s7, nb30, s30, sq30, nbh, sh, nb10, prev_dt, nterms, seen, hlat, hlon, hn, plat, plon, pcoord}
end

local out = {}
for n = 1, #ops do
  local op = ops[n]
  local k, t, txid = op[1], op[2], op[5]
  local ev = load(k)
  local p = nil
  for i = #ev, 1, -1 do
    if ev[i][4] == txid then p = i; break end
  end
  local dup, stored = 0, false
  if p then
    local e = ev[p]
    if e[1] ~= t or e[2] ~= op[3] or e[3] ~= op[4] then
      dup = 2  -- the id is already used by a different transaction: change nothing
    else
      dup = 1
      local rec = redis.call('HGET', KEYS[k + 1], txid)
      if rec then stored = rec end
    end
  else
    p = #ev + 1
    while p > 1 and ev[p - 1][1] > t do p = p - 1 end
    local e = {t, op[3], op[4], txid}
    if op[6] ~= nil then e[5] = op[6]; e[6] = op[7] end
    table.insert(ev, p, e)
    dirty[k] = true
  end
  local row = aggregates(ev, p)
  table.insert(row, 1, stored)
  table.insert(row, 1, dup)
  out[n] = row
end

for k, _ in pairs(dirty) do
  local ev = lists[k]
  local cut = ev[#ev][1] - RET
  local first = 1
  while first <= #ev and ev[first][1] < cut do first = first + 1 end
  if first > 1 then
    local kept = {}
    for i = first, #ev do kept[#kept + 1] = ev[i] end
    ev = kept
  end
  redis.call('SET', KEYS[k], cmsgpack.pack(ev))
end
return cmsgpack.pack(out)
