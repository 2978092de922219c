-- Mark transactions of terminals as fraudulent (labels), idempotently.
-- KEYS: one events key per terminal (see terminal_update.lua for the layout).
-- ARGV[1]: msgpack ops {key_index, id_hash}. Sets the event's fraud flag and adds 1 to the
-- cumulative frauds of it and every later event. Returns the number of events marked now
-- (already-marked or unknown ones are not counted).
local H, W = 4, 17
local REC = '<i6c6BI4'
local ops = cmsgpack.unpack(ARGV[1])
local data, dirty, marked = {}, {}, 0

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

for n = 1, #ops do
  local k, idh = ops[n][1], ops[n][2]
  local s = data[k]
  if s == nil then
    s = redis.call('GET', KEYS[k]) or struct.pack('<I4', 0)
    data[k] = s
  end
  local p = find_id(s, idh)
  if p and struct.unpack('<B', s, H + (p - 1) * W + 13) == 0 then
    local parts = {string.sub(s, 1, H + (p - 1) * W)}
    for j = p, (#s - H) / W do
      local tj, idj, fj, cj = struct.unpack(REC, s, H + (j - 1) * W + 1)
      if j == p then fj = 1 end
      parts[#parts + 1] = struct.pack(REC, tj, idj, fj, cj + 1)
    end
    s = table.concat(parts)
    data[k] = s
    dirty[k] = true
    marked = marked + 1
  end
end
for k, _ in pairs(dirty) do redis.call('SET', KEYS[k], data[k]) end
return marked
