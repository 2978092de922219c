-- Scored records, by ARGV[1]: 'take' fetches and deletes (each is returned once), 'keep' fetches,
-- 'peek' fetches with the milliseconds each has left to live ({payload, pttl}), 'drop' deletes.
-- KEYS: the records' keys (one hash slot). Returns a list in KEYS order, false where absent.
local mode = ARGV[1]
local out = {}
for i = 1, #KEYS do
  if mode == 'drop' then
    out[i] = redis.call('DEL', KEYS[i])
  else
    local rec = redis.call('GET', KEYS[i])
    if rec and mode == 'take' then redis.call('DEL', KEYS[i]) end
    if rec and mode == 'peek' then rec = {rec, redis.call('PTTL', KEYS[i])} end
    out[i] = rec or false
  end
end
return out
