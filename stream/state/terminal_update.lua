-- Insert transactions into terminals' event lists and return the terminal aggregates, atomically.
-- KEYS: one events key per terminal. ARGV[1]: msgpack ops {key_index, t_ms, txid}.
-- ARGV[2]: the handbook's delay period (7 d) in ms; ARGV[3..5]: 1, 7, 30 d windows; ARGV[6]: 1 h;
-- ARGV[7]: retention, in ms. Events: one flat msgpack array, S = 3 values per event
-- {t_ms, txid, fraud 0/1}, sorted by (t_ms, arrival).
-- Returns per op {count_1d, frauds_1d, count_7d, frauds_7d, count_30d, frauds_30d, count_1h}
-- over (t - delay - n, t - delay] (and (t - 1 h, t]); mirrors MemoryStore.terminal_aggregates.
local S = 3
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

local function frauds(ev, a, b)
  local s = 0
  for i = a, b do s = s + ev[(i - 1) * S + 3] end
  return s
end

local function aggregates(ev, p)
  local t = ev[(p - 1) * S + 1]
  local i = p
  while i >= 1 and ev[(i - 1) * S + 1] > t - H1 do i = i - 1 end
  local ch = p - i
  i = p
  while i >= 1 and ev[(i - 1) * S + 1] > t - D do i = i - 1 end
  local e = i  -- last event at or before t - delay (0: none)
  while i >= 1 and ev[(i - 1) * S + 1] > t - D - A do i = i - 1 end
  local ia = i + 1
  while i >= 1 and ev[(i - 1) * S + 1] > t - D - B do i = i - 1 end
  local ib = i + 1
  while i >= 1 and ev[(i - 1) * S + 1] > t - D - C do i = i - 1 end
  local ic = i + 1
  local fa = frauds(ev, ia, e)
  local fb = fa + frauds(ev, ib, ia - 1)
  local fc = fb + frauds(ev, ic, ib - 1)
  return {e - ia + 1, fa, e - ib + 1, fb, e - ic + 1, fc, ch}
end

local out = {}
for n = 1, #ops do
  local op = ops[n]
  local k, t, txid = op[1], op[2], op[3]
  local ev = load(k)
  local count = #ev / S
  local p = nil
  for i = count, 1, -1 do
    if ev[(i - 1) * S + 2] == txid then p = i; break end
  end
  if not p then
    p = count + 1
    while p > 1 and ev[(p - 2) * S + 1] > t do p = p - 1 end
    for j = count * S, (p - 1) * S + 1, -1 do ev[j + S] = ev[j] end
    local b = (p - 1) * S
    ev[b + 1] = t; ev[b + 2] = txid; ev[b + 3] = 0
    dirty[k] = true
  end
  out[n] = aggregates(ev, p)
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
