-- Reserve an amount on every bucket of a request, atomically, or on none.
--
-- KEYS: bucket 1, its set, bucket 2, its set, ... (all of one organization: one hash tag)
-- ARGV: id, ttl_ms, amount, min_clamp, then per bucket: limit, expire_in_ms (0: never), thresholds
--       (csv of percents), flags (1 enforce, 2 clamp; 0 is a monitor bucket).
-- Returns {status, amount, refused_index, then per bucket: spent, reserved, newly_fired, would_refuse}
-- where status is 1 (reserved), 2 (reserved, clamped to `amount`), 3 (already reserved: a retried
-- call) or 0 (refused by bucket `refused_index`, 1-based; nothing reserved).
local id, ttl, amount_s, min_clamp = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local amount = tonumber(amount_s)
local n = #KEYS / 2
local now = now_ms()

if n > 0 and redis.call('ZSCORE', KEYS[2], id .. ':' .. amount_s) then
  return {3, amount, 0}
end

local limit, spent, reserved, free, flags, fired, at = {}, {}, {}, {}, {}, {}, {}
local refused, clamp_ok = 0, true
for i = 1, n do
  local key, zkey, base = KEYS[2 * i - 1], KEYS[2 * i], 4 + (i - 1) * 4
  limit[i], at[i], flags[i] = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2]), tonumber(ARGV[base + 4])
  reclaim(key, zkey, now)
  spent[i], reserved[i] = totals(key)
  fired[i] = newly_fired(key, limit[i], spent[i], thresholds_of(ARGV[base + 3]))
  free[i] = limit[i] - spent[i] - reserved[i]
  if flags[i] % 2 == 1 and amount > free[i] then
    if refused == 0 then
      refused = i
    end
    if flags[i] < 3 then
      clamp_ok = false
    end
  end
end

local take, status = amount, 1
if refused > 0 then
  take = amount
  for i = 1, n do
    if flags[i] % 2 == 1 and free[i] < take then
      take = free[i]
    end
  end
  if not clamp_ok or take < math.max(min_clamp, 1) then
    local out = {0, 0, refused}
    for i = 1, n do
      out[#out + 1] = spent[i]
      out[#out + 1] = reserved[i]
      out[#out + 1] = fired[i]
      out[#out + 1] = 0
    end
    return out
  end
  status = 2
end

local take_s = fmt(take)
local member = id .. ':' .. take_s
local out = {status, take, 0}
for i = 1, n do
  local key, zkey = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('HINCRBY', key, 'reserved', take_s)
  redis.call('ZADD', zkey, now + ttl, member)
  expire(key, zkey, at[i])
  out[#out + 1] = spent[i]
  out[#out + 1] = reserved[i] + take
  out[#out + 1] = fired[i]
  out[#out + 1] = (flags[i] % 2 == 0 and take > free[i]) and 1 or 0
end
return out
