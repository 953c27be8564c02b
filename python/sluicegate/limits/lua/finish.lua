-- End a grant on its lines of one organization: a window line's slot moves by `delta` (a tokens
-- line's actual count minus its estimate; only while that slot is in the window, never below 0),
-- a concurrent line's entry is removed. Harmless when repeated or when the keys have expired.
--
-- KEYS: as acquire.lua.
-- ARGV: now_ms, grant id, slot_ms, then per line 4 values: kind ('w' or 'c'), window slots (or the
--   entry ttl), the grant's slot, delta.
-- Returns the number of lines touched.
local now, gid, slot_ms = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local n = #KEYS / 2
local s0 = math.floor(now / slot_ms)
local touched = 0
for i = 1, n do
  local a, b, base = KEYS[2 * i - 1], KEYS[2 * i], 3 + (i - 1) * 4
  local kind, w = ARGV[base + 1], tonumber(ARGV[base + 2])
  local slot, delta = tonumber(ARGV[base + 3]), tonumber(ARGV[base + 4])
  if kind == 'w' then
    if delta ~= 0 then
      local s = advance(a, b, s0, w)
      adjust(a, b, slot, delta, s - w, s)
      if redis.call('EXISTS', a) == 1 then
        expire_window(a, b, s, w, slot_ms, now)
      end
      touched = touched + 1
    end
  else
    touched = touched + redis.call('ZREM', a, gid)
  end
end
return touched
