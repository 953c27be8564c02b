-- Replace a reservation by its actual cost on every bucket it holds (a release is a settle of 0).
--
-- KEYS: bucket 1, its set, bucket 2, its set, ...
-- ARGV: id, amount (as reserved), actual, then per bucket: limit, expire_in_ms, thresholds (csv).
-- Returns per bucket: status, spent, reserved, newly_fired, where status is 1 (settled), 2 (the
-- reservation had expired and was counted as spent: that count is replaced by the actual cost) or
-- 0 (nothing to do: already settled, so a retried settle is harmless).
local id, amount_s, actual_s = ARGV[1], ARGV[2], ARGV[3]
local amount, actual = tonumber(amount_s), tonumber(actual_s)
local n = #KEYS / 2
local now = now_ms()
local out = {}
for i = 1, n do
  local key, zkey, base = KEYS[2 * i - 1], KEYS[2 * i], 3 + (i - 1) * 3
  local limit, at = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local status = 0
  if redis.call('ZREM', zkey, id .. ':' .. amount_s) == 1 then
    redis.call('HINCRBY', key, 'reserved', '-' .. amount_s)
    redis.call('HINCRBY', key, 'spent', actual_s)
    status = 1
  elseif redis.call('HDEL', key, 'x:' .. id) == 1 then
    redis.call('HINCRBY', key, 'spent', fmt(actual - amount))
    status = 2
  end
  reclaim(key, zkey, now)
  expire(key, zkey, at)
  local spent, reserved = totals(key)
  out[#out + 1] = status
  out[#out + 1] = spent
  out[#out + 1] = reserved
  out[#out + 1] = newly_fired(key, limit, spent, thresholds_of(ARGV[base + 3]))
end
return out
