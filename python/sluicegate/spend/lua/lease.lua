-- Synchronise an instance's leases on some buckets of one organization: record the spend made
-- locally, return what is no longer held, grant more when asked, and renew the lease's expiry.
--
-- Every value the instance sends is absolute (its local capacity and its cumulative local spend on
-- the bucket), so a call that is retried or whose answer was lost leaves the same state.
--
-- KEYS: bucket 1, its set, bucket 2, its set, ...
-- ARGV: ttl_ms, divisor, then per bucket: limit, expire_in_ms, thresholds (csv), flags
--       (1 enforce; 0 monitor: grants what is needed even past the limit), capacity, spent,
--       need (extra needed now), want (extra wanted: a slice), lease id.
-- The lease then holds `capacity + granted - spent` in `reserved`; the slice granted is
-- `max(need, min(want, floor(free / divisor)))`, or 0 when even `need` does not fit.
-- Returns per bucket: granted, spent, reserved, free (after the grant), newly_fired, would_refuse.
local ttl, divisor = tonumber(ARGV[1]), tonumber(ARGV[2])
local n = #KEYS / 2
local now = now_ms()
local out = {}
for i = 1, n do
  local key, zkey, base = KEYS[2 * i - 1], KEYS[2 * i], 2 + (i - 1) * 9
  local id = ARGV[base + 9]
  local field = 'l:' .. id
  local member = field
  local limit, at = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local enforce = tonumber(ARGV[base + 4]) % 2 == 1
  local capacity, spent_cum = tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6])
  local need, want = tonumber(ARGV[base + 7]), tonumber(ARGV[base + 8])
  reclaim(key, zkey, now)
  -- What this lease holds in `reserved` now, per Redis (g - s); a reclaimed lease's hold was moved
  -- to `spent`: move it back, the instance is alive after all.
  local g, s = 0, 0
  local rec = redis.call('HGET', key, field)
  if rec then
    g, s = split2(rec)
  else
    local tomb = redis.call('HGET', key, 'lx:' .. id)
    if tomb then
      g, s = split2(tomb)
      redis.call('HDEL', key, 'lx:' .. id)
      redis.call('HINCRBY', key, 'spent', fmt(-(g - s)))
      redis.call('HINCRBY', key, 'reserved', fmt(g - s))
    else
      -- A new lease (capacity 0), or a bucket whose key has expired: hold what the instance has.
      g, s = capacity, math.min(spent_cum, capacity)
      redis.call('HINCRBY', key, 'reserved', fmt(g - s))
    end
  end
  local s2 = math.max(s, spent_cum)
  redis.call('HINCRBY', key, 'spent', fmt(s2 - s))
  -- Never below 0: the instance grows its capacity by any overshoot it settles, so capacity >= s2.
  redis.call('HINCRBY', key, 'reserved', fmt(math.max(capacity - s2, 0) - (g - s)))
  local spent, reserved = totals(key)
  local free = limit - spent - reserved
  local grant, would_refuse = 0, 0
  if need > 0 or want > 0 then
    local share = math.floor(math.max(free, 0) / divisor)
    grant = math.max(need, math.min(want, share))
    if grant > free then
      grant = need
      if need > free then
        would_refuse = 1
        if enforce then
          grant = 0
        end
      end
    end
  end
  if grant > 0 then
    redis.call('HINCRBY', key, 'reserved', fmt(grant))
    reserved = reserved + grant
  end
  local hold = capacity + grant - s2
  if hold > 0 or (need > 0 or want > 0) then
    redis.call('HSET', key, field, fmt(capacity + grant) .. ' ' .. fmt(s2))
    redis.call('ZADD', zkey, now + ttl, member)
  else
    redis.call('HDEL', key, field)
    redis.call('ZREM', zkey, member)
  end
  expire(key, zkey, at)
  out[#out + 1] = grant
  out[#out + 1] = spent
  out[#out + 1] = reserved
  out[#out + 1] = limit - spent - reserved
  out[#out + 1] = newly_fired(key, limit, spent, thresholds_of(ARGV[base + 3]))
  out[#out + 1] = would_refuse
end
return out
