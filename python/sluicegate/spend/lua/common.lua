-- Shared by every sluicegate spend script (prepended when the script is registered).
--
-- A bucket is a hash (fields `spent`, `reserved`, `fired`, lease records `l:<id>`, and tombstones
-- `x:<id>` / `lx:<id>`) plus a sorted set `<bucket>:r` of what holds money in `reserved`:
-- reservations (member `<id>:<amount>`) and leases (member `l:<id>`), scored by expiry in ms.
--
-- Lua numbers are doubles: every amount stays below 2^53 (the Python side refuses larger caps and
-- amounts), and values are written back with HINCRBY from strings (`fmt`), never as Lua numbers,
-- which Redis would format with too few digits.

local function fmt(n)
  return string.format('%d', n)
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split2(s)
  local a, b = string.match(s, '^(%-?%d+) (%-?%d+)$')
  return tonumber(a), tonumber(b)
end

local function thresholds_of(csv)
  local out = {}
  for t in string.gmatch(csv, '%d+') do
    out[#out + 1] = tonumber(t)
  end
  return out
end

-- Expired reservations and leases of one bucket count as spent: their whole amount moves from
-- `reserved` to `spent`, and a tombstone remembers it so that a late settle can replace it by the
-- actual cost. At most 64 per call; the rest go on the next call.
local function reclaim(key, zkey, now)
  local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, 64)
  for _, m in ipairs(expired) do
    if string.sub(m, 1, 2) == 'l:' then
      local rec = redis.call('HGET', key, m)
      if rec then
        local g, s = split2(rec)
        local hold = g - s
        redis.call('HINCRBY', key, 'reserved', fmt(-hold))
        redis.call('HINCRBY', key, 'spent', fmt(hold))
        redis.call('HSET', key, 'lx:' .. string.sub(m, 3), rec)
        redis.call('HDEL', key, m)
      end
    else
      local id, amount = string.match(m, '^(.*):(%d+)$')
      if id then
        redis.call('HINCRBY', key, 'reserved', '-' .. amount)
        redis.call('HINCRBY', key, 'spent', amount)
        redis.call('HSET', key, 'x:' .. id, amount)
      end
    end
    redis.call('ZREM', zkey, m)
  end
end

local function totals(key)
  local v = redis.call('HMGET', key, 'spent', 'reserved')
  return tonumber(v[1] or '0'), tonumber(v[2] or '0')
end

-- The thresholds (percent of `limit`) that `spent` reaches for the first time in this bucket, as
-- a bit mask; they are remembered in `fired` so each fires once per bucket (once per window).
local function newly_fired(key, limit, spent, ths)
  if #ths == 0 then
    return 0
  end
  local fired = tonumber(redis.call('HGET', key, 'fired') or '0')
  local new = 0
  for i, t in ipairs(ths) do
    local bit = 2 ^ (i - 1)
    if spent * 100 >= limit * t and fired % (2 * bit) < bit then
      new = new + bit
    end
  end
  if new > 0 then
    redis.call('HSET', key, 'fired', fmt(fired + new))
  end
  return new
end

-- `ttl` is relative (ms): the caller computes it from its own clock (which a test may set to any
-- date), so a window's keys live as long as that clock says, whatever Redis's own date is.
-- 0 means the keys never expire (a `total` cap).
local function expire(key, zkey, ttl)
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
    redis.call('PEXPIRE', zkey, ttl)
  end
end
