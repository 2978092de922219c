-- Mark transactions of terminals as fraudulent (labels), idempotently.
-- KEYS: one events key per terminal. ARGV[1]: msgpack ops {key_index, txid}.
-- Returns the number of events marked now (already-marked or unknown ones are not counted).
local ops = cmsgpack.unpack(ARGV[1])
local lists, dirty, marked = {}, {}, 0
for n = 1, #ops do
  local k, txid = ops[n][1], ops[n][2]
  local ev = lists[k]
  if ev == nil then
    local raw = redis.call('GET', KEYS[k])
    if raw then ev = cmsgpack.unpack(raw) else ev = {} end
    lists[k] = ev
  end
  for i = #ev, 1, -1 do
    if ev[i][2] == txid then
      if ev[i][3] ~= 1 then ev[i][3] = 1; dirty[k] = true; marked = marked + 1 end
      break
    end
  end
end
for k, _ in pairs(dirty) do redis.call('SET', KEYS[k], cmsgpack.pack(lists[k])) end
return marked
