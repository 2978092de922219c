-- Mark transactions of terminals as fraudulent (labels), idempotently: a fraud mark {t_s of the
-- transaction (4), known since (the label's report time, 4), id hash (4)} at the front of the terminal's
-- string (see terminal_update.lua for the layout). It counts for the terminal's features of
-- transactions at or after the time it is known, whatever the order in which labels and
-- transactions are processed. A mark for a transaction marked before (the same second and id hash)
-- is ignored: the first one wins. The marks already there are looked up in a set built once per
-- key and call, so a terminal with many marks costs O(m) a call, not a mark.
-- KEYS: one key per terminal. ARGV[1]: msgpack ops {key_index, mark (12 bytes)}.
-- Returns the number of marks added.
local M = 12
-- a mark's key: the transaction's second (bytes 1-4) and id hash (9-12), as its event record holds them
local function key(s, at) return string.sub(s, at + 1, at + 4) .. string.sub(s, at + 9, at + 12) end
local ops = cmsgpack.unpack(ARGV[1])
local data, marks, seen, added = {}, {}, {}, 0

for n = 1, #ops do
  local k, mark = ops[n][1], ops[n][2]
  if data[k] == nil then
    local s = redis.call('GET', KEYS[k]) or '\0\0\0\0'
    data[k] = s
    local m = struct.unpack('<I4', s, 1)
    local set = {}
    for i = 0, m - 1 do set[key(s, 4 + i * M)] = true end
    marks[k], seen[k] = {string.sub(s, 5, 4 + m * M)}, set
  end
  local idh = key(mark, 0)
  if not seen[k][idh] then
    seen[k][idh] = true
    marks[k][#marks[k] + 1] = mark
    added = added + 1
  end
end
for k, s in pairs(data) do
  if #marks[k] > 1 then
    local old = 4 + struct.unpack('<I4', s, 1) * M
    local all = table.concat(marks[k])
    redis.call('SET', KEYS[k], struct.pack('<I4', #all / M) .. all .. string.sub(s, old + 1))
  end
end
return added
