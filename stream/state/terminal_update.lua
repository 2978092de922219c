-- Insert transactions into terminals' event lists and return the terminal aggregates, atomically.
-- KEYS: one events key per terminal. ARGV[1]: msgpack ops {key_index, t_ms, id_hash (6 bytes)}.
-- ARGV[2]: the handbook's delay period (7 d) in ms; ARGV[3..5]: 1, 7, 30 d windows; ARGV[6]: 1 h;
-- ARGV[7]: retention, in ms.
-- Events key: a 4-byte header '<I4' (frauds among the trimmed events), then one 17-byte record per
-- event '<i6c6BI4' {t_ms, id hash, fraud 0/1, cumulative frauds}, sorted by (t_ms, arrival); see
-- terminal_mark_fraud.lua for the labels. Window counts are index differences, fraud sums
-- differences of cumulative sums, bounds binary searches.
-- Returns per op {count_1d, frauds_1d, count_7d, frauds_7d, count_30d, frauds_30d, count_1h}
-- over (t - delay - n, t - delay] (and (t - 1 h, t]); mirrors MemoryStore.terminal_aggregates.
local H, W = 4, 17
local REC = '<i6c6BI4'
local ops = cmsgpack.unpack(ARGV[1])
local D, A, B, C, H1, RET =
  tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local data, dirty = {}, {}

local function count(s) return (#s - H) / W end
local function time_at(s, i) return (struct.unpack('<i6', s, H + (i - 1) * W + 1)) end
local function cum(s, i)  -- frauds through event i (0: the header's base)
  if i == 0 then return (struct.unpack('<I4', s, 1)) end
  return (struct.unpack('<I4', s, H + (i - 1) * W + 14))
end

-- first index in [lo, hi] whose time is > bound (hi + 1 if none)
local function first_after(s, bound, lo, hi)
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    if time_at(s, mid) > bound then hi = mid - 1 else lo = mid + 1 end
  end
  return lo
end

local function find_id(s, idh)
  local init = H + 7
  while true do
    local pos = string.find(s, idh, init, true)
    if not pos then return nil end
    local rel = pos - 1 - H - 6
    if rel % W == 0 then return rel / W + 1 end
    init = pos + 1
  end
end

local function aggregates(s, p)
  local t = time_at(s, p)
  local i = p
  while i >= 1 and time_at(s, i) > t - H1 do i = i - 1 end
  local ch = p - i
  local e = first_after(s, t - D, 1, p) - 1  -- last event at or before t - delay (0: none)
  local ic = first_after(s, t - D - C, 1, e)
  local ib = first_after(s, t - D - B, ic, e)
  local ia = first_after(s, t - D - A, ib, e)
  local fe = cum(s, e)
  return {e - ia + 1, fe - cum(s, ia - 1), e - ib + 1, fe - cum(s, ib - 1), e - ic + 1, fe - cum(s, ic - 1), ch}
end

local out = {}
for n = 1, #ops do
  local op = ops[n]
  local k, t, idh = op[1], op[2], op[3]
  local s = data[k]
  if s == nil then
    s = redis.call('GET', KEYS[k]) or struct.pack('<I4', 0)
    data[k] = s
  end
  local p = find_id(s, idh)
  if not p then
    p = first_after(s, t, 1, count(s))
    local off = H + (p - 1) * W
    s = string.sub(s, 1, off) .. struct.pack(REC, t, idh, 0, cum(s, p - 1)) .. string.sub(s, off + 1)
    data[k] = s
    dirty[k] = true
  end
  out[n] = aggregates(s, p)
end

for k, _ in pairs(dirty) do
  local s = data[k]
  local n = count(s)
  local cut = time_at(s, n) - RET
  if time_at(s, 1) < cut then
    local first = first_after(s, cut - 1, 1, n)
    s = struct.pack('<I4', cum(s, first - 1)) .. string.sub(s, H + (first - 1) * W + 1)
  end
  redis.call('SET', KEYS[k], s)
end
return cmsgpack.pack(out)
