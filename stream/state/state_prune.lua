-- Delete the feature state of a customer or a terminal whose newest event is older than a cut: what
-- an append at the cut's time would have cut all of (`fraudstream prune-state`, stream/state/prune_state.py).
-- Checked and deleted in one call, so a consumer's append is never lost.
-- KEYS: a customer's events and coordinates keys (layouts: customer_update.lua), or a terminal's
-- events key (terminal_update.lua). ARGV[1]: 'c' or 't'; ARGV[2]: the cut, in epoch seconds.
-- Returns 1 if the keys were deleted, else 0.
local s = redis.call('GET', KEYS[1])
local cut = tonumber(ARGV[2])
local sunpack = struct.unpack
local newest = -1
if s then
  if ARGV[1] == 'c' then  -- 17-byte records in arrival order, each starting with its time
    for i = 1, #s - 16, 17 do
      local t = sunpack('<I4', s, i)
      if t > newest then newest = t end
    end
  else  -- a count m, m fraud marks of 12 bytes (the transaction's time first), events of 8 sorted by time
    local head = 4 + sunpack('<I4', s, 1) * 12
    if #s >= head + 8 then newest = sunpack('<I4', s, #s - 7) end
    for i = 5, head - 11, 12 do
      local t = sunpack('<I4', s, i)
      if t > newest then newest = t end
    end
  end
end
if newest >= cut then return 0 end
if redis.call('DEL', unpack(KEYS)) > 0 then return 1 end
return 0
