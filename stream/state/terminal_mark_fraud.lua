-- Mark transactions of terminals as fraudulent (labels), idempotently: a fraud mark {t_s of the
-- transaction (4), known since (the label's report time, 4), id hash (4)} at the front of the terminal's
-- string (see terminal_update.lua for the layout; the header holds their count). It counts for the terminal's features of
-- transactions at or after the time it is known, whatever the order in which labels and
-- transactions are processed. A mark for a transaction marked before (the same second and id hash)
-- is ignored: the first one wins.
-- KEYS: one key per terminal. ARGV[1]: msgpack ops {key_index, mark (12 bytes)}.
-- Returns the number of marks added.
local M = 12
local SORTED = 2147483648  -- the header's top bit: the events are sorted (terminal_update.lua)
-- a mark's key: the transaction's second (bytes 1-4) and id hash (9-12), as its event record holds them
local function key(s, at) return string.sub(s, at + 1, at + 4) .. string.sub(s, at + 9, at + 12) end
local ops = cmsgpack.unpack(ARGV[1])
local data, marks, added = {}, {}, 0

for n = 1, #ops do
  local k, mark = ops[n][1], ops[n][2]
  if data[k] == nil then
    local s = redis.call('GET', KEYS[k]) or '\0\0\0\0'
    data[k] = s
    marks[k] = string.sub(s, 5, 4 + struct.unpack('<I4', s, 1) % SORTED * M)
  end
  local idh, found = key(mark, 0), false
  for i = 0, #marks[k] / M - 1 do
    if key(marks[k], i * M) == idh then found = true; break end
  end
  if not found then
    marks[k] = marks[k] .. mark
    added = added + 1
  end
end
for k, s in pairs(data) do
  local header = struct.unpack('<I4', s, 1)
  local old = 4 + header % SORTED * M
  if #marks[k] ~= old - 4 then  -- the header's top bit (the events are sorted) is kept
    redis.call('SET', KEYS[k], struct.pack('<I4', #marks[k] / M + header - header % SORTED) .. marks[k]
                               .. string.sub(s, old + 1))
  end
end
return added
