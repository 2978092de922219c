-- Append labelled feature vectors to the label stream once per transaction (what the learner learns).
-- KEYS[1]: the label stream; KEYS[2 .. 1+#names]: the models' score lists; then the keys of the
-- feature names' lists the entries refer to; then the marker hashes the entries refer to (one per
-- hour of the labelled transactions' event time); last, the legacy marker hash (markers moved there
-- by `fraudstream migrate-records` from the one-key-per-label layout; usually absent). All keys are
-- in the registry's hash slot.
-- ARGV[1]: msgpack list of {features (msgpack bytes, '' = no scored record: only check the marker),
--   is_fraud 0/1, scores in the order of the names, marker hash index (0: no marker), marker ttl ms,
--   marker field ("<length of the customer id>:<customer id><transaction id>")};
-- ARGV[2]: msgpack model names; ARGV[3]: score-list cap (items "score,label,entry id": the id lets
-- two models be compared on the labels both scored); ARGV[4]: msgpack list of the feature
-- names' lists (stored packed, one per names key, with the entries: they never outlive them).
-- The marker (the field = the label) makes a label delivered again (a
-- process killed after this call but before its offsets were committed) a no-op. A marker hash's
-- time to live is raised to the longest its new markers need (never lowered).
-- Returns {per entry: 0 appended, 1 already applied (same label), 2 already applied with the other
-- label, 3 neither a scored record nor a marker (unknown transaction); the id of the stream's newest
-- entry before this call ('0-0': none); the ids of the appended entries}. The appended entries follow
-- that id directly (a script runs alone), so a learner at that id can learn them without reading them.
local entries, names, feature_names = cmsgpack.unpack(ARGV[1]), cmsgpack.unpack(ARGV[2]), cmsgpack.unpack(ARGV[4])
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local before, ids = newest[1] and newest[1][1] or '0-0', {}
for k = 1, #feature_names do redis.call('SET', KEYS[#names + 1 + k], feature_names[k]) end
local first_marker = #names + 2 + #feature_names
local legacy_key = KEYS[#KEYS]
local legacy = redis.call('EXISTS', legacy_key) == 1
-- the legacy layout's field, "<customer id>:<transaction id>", of a marker field
local function legacy_field(f)
  local colon = string.find(f, ':', 1, true)
  local n = tonumber(string.sub(f, 1, colon - 1))
  return string.sub(f, colon + 1, colon + n) .. ':' .. string.sub(f, colon + n + 1)
end
local perf, out, ttl = {}, {}, {}
for m = 1, #names do perf[m] = {} end
for i = 1, #entries do
  local e = entries[i]
  local marker = e[4] > 0 and KEYS[first_marker + e[4] - 1] or nil
  local seen = marker and redis.call('HGET', marker, e[6])
  if marker and not seen and legacy then seen = redis.call('HGET', legacy_key, legacy_field(e[6])) end
  local y = tostring(e[2])
  if seen then
    out[i] = (seen == y) and 1 or 2
  elseif e[1] == '' then
    out[i] = 3
  else
    if marker then
      redis.call('HSET', marker, e[6], y)
      if (ttl[marker] or 0) < e[5] then ttl[marker] = e[5] end
    end
    local id = redis.call('XADD', KEYS[1], '*', 'x', e[1], 'y', y)
    ids[#ids + 1] = id
    for m = 1, #names do
      if e[3][m] then table.insert(perf[m], string.format('%.17g,%d,%s', e[3][m], e[2], id)) end
    end
    out[i] = 0
  end
end
for key, want in pairs(ttl) do
  if redis.call('PTTL', key) < want then redis.call('PEXPIRE', key, want) end
end
for m = 1, #names do
  if #perf[m] > 0 then
    redis.call('RPUSH', KEYS[m + 1], unpack(perf[m]))
    redis.call('LTRIM', KEYS[m + 1], -tonumber(ARGV[3]), -1)
  end
end
return {out, before, ids}
