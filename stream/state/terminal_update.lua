-- Insert transactions into terminals' event lists and return the terminal aggregates, atomically.
-- KEYS: one events key per terminal. ARGV[1]: msgpack ops {key_index, t_ms, txid}.
-- ARGV[2]: the handbook's delay period (7 d) in ms; ARGV[3..5]: 1, 7, 30 d windows; ARGV[6]: 1 h;
-- ARGV[7]: retention, in ms. Event: {t_ms, txid, fraud 0/1}, sorted by (t_ms, arrival).
-- Returns per op {count_1d, frauds_1d, count_7d, frauds_7d, count_30d, frauds_30d, count_1h}
-- over (t - delay - n, t - delay] (and (t - 1 h, t]); mirrors MemoryStore.terminal_aggregates.
local ops = cmsgpack.unpack(ARGV[1])
local D, A, B, C, H1, RET =
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
  local t = ev[p][1]
  local ca, fa, cb, fb, cc, fc, ch = 0, 0, 0, 0, 0, 0, 0
  local limit = D + C
  for i = p, 1, -1 do
    local e = ev[i]
    local dt = t - e[1]
    if dt >= limit then break end
    if dt < H1 then ch = ch + 1 end
    if dt >= D then
      local f = e[3]
      cc = cc + 1; fc = fc + f
      if dt < D + B then cb = cb + 1; fb = fb + f end
      if dt < D + A then ca = ca + 1; fa = fa + f end
    end
  end
  return {ca, fa, cb, fb, cc, fc, ch}
end

local out = {}
for n = 1, #ops do
  local op = ops[n]
  local k, t, txid = op[1], op[2], op[3]
  local ev = load(k)
  local p = nil
  for i = #ev, 1, -1 do
    if ev[i][2] == txid then p = i; break end
  end
  if not p then
    p = #ev + 1
    while p > 1 and ev[p - 1][1] > t do p = p - 1 end
    table.insert(ev, p, {t, txid, 0})
    dirty[k] = true
  end
  out[n] = aggregates(ev, p)
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
