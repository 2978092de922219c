-- Mark transactions of terminals as fraudulent (labels), idempotently.
-- KEYS: one events key per terminal (flat array, 3 values per event {t_ms, txid, fraud}, see
-- terminal_update.lua). ARGV[1]: msgpack ops {key_index, txid}.
-- Returns the number of events marked now (already-marked or unknown ones are not counted).
local S = 3
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
  for i = #ev / S, 1, -1 do
    if ev[(i - 1) * S + 2] == txid then
      if ev[i * S] ~= 1 then ev[i * S] = 1; dirty[k] = true; marked = marked + 1 end
      break
    end
  end
end
for k, _ in pairs(dirty) do redis.call('SET', KEYS[k], cmsgpack.pack(lists[k])) end
return marked
