-- Fetch and delete scored records (each is returned once); with ARGV[1] == 'keep', only fetch.
-- KEYS: the records' keys (one hash slot). Returns a list of payloads, false where absent.
local out = {}
local keep = ARGV[1] == 'keep'
for i = 1, #KEYS do
  local rec = redis.call('GET', KEYS[i])
  if rec and not keep then redis.call('DEL', KEYS[i]) end
  out[i] = rec or false
end
return out
