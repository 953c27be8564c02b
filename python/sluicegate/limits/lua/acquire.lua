-- Acquire a request's cost on every limit line of one organization at once, or on none.
--
-- KEYS: per line two keys: a window line's hash and its set; a concurrent line's set, twice.
-- ARGV: now_ms, grant id, slot_ms, divisor, then per line 7 values:
--   kind ('w' window, 'c' concurrent), limit, window slots ('w') or entry ttl_ms ('c'),
--   enforce (1, or 0: a monitor line, which counts whatever happens), need (the request's cost;
--   a concurrent line counts 1 for any need above 0), want (leases: extra room asked for, granted
--   only as far as it fits, and at most 1/divisor of what is free after `need`), adjustments
--   ("slot:delta,slot:delta" or "": batched settlements and unused slices, applied first).
-- Returns {refused, then per line: granted, slot, counted, reset_ms, retry_ms, would_refuse} where
-- refused is 0 (admitted) or the 1-based line that refused (then nothing is counted anywhere);
-- `slot` is the slot a window line counted in; `retry_ms` (set where `need` did not fit) is until
-- it would, -1 when it never can (need > limit), a 1 s hint on a concurrent line.
local now, gid, slot_ms, divisor = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 2
local s0 = math.floor(now / slot_ms)
local kind, limit, w, enforce, need, want, s, t, retry = {}, {}, {}, {}, {}, {}, {}, {}, {}
local refused = 0
for i = 1, n do
  local a, b, base = KEYS[2 * i - 1], KEYS[2 * i], 4 + (i - 1) * 7
  kind[i], limit[i], w[i] = ARGV[base + 1], tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3])
  enforce[i], need[i], want[i] = ARGV[base + 4] == '1', tonumber(ARGV[base + 5]), tonumber(ARGV[base + 6])
  if kind[i] == 'w' then
    s[i] = advance(a, b, s0, w[i])
    adjust_all(a, b, ARGV[base + 7], s[i] - w[i], s[i])
    t[i] = total(a)
    retry[i] = retry_ms(a, b, t[i], need[i], limit[i], w[i], slot_ms, now)
  else
    s[i] = 0
    redis.call('ZREMRANGEBYSCORE', a, '-inf', now)
    t[i] = redis.call('ZCARD', a)
    need[i] = math.min(need[i], 1)
    retry[i] = 0
    if need[i] > limit[i] then
      retry[i] = -1
    elseif t[i] + need[i] > limit[i] then
      retry[i] = 1000
    end
  end
  if refused == 0 and enforce[i] and t[i] + need[i] > limit[i] then
    refused = i
  end
end

local out = {refused}
for i = 1, n do
  local a, b = KEYS[2 * i - 1], KEYS[2 * i]
  local would = 0
  if t[i] + need[i] > limit[i] then
    would = 1
  end
  local granted = 0
  if refused == 0 then
    granted = need[i]
    if would == 0 and want[i] > 0 and kind[i] == 'w' then
      granted = granted + math.min(want[i], math.floor((limit[i] - t[i] - need[i]) / divisor))
    end
    if kind[i] == 'w' then
      count(a, b, s[i], granted)
      t[i] = t[i] + granted
    elseif granted > 0 then
      -- a retried call finds its entry: counted once
      t[i] = t[i] + redis.call('ZADD', a, now + w[i], gid)
    end
  end
  local reset = 0
  if kind[i] == 'w' then
    reset = reset_ms(b, t[i], w[i], slot_ms, now)
    expire_window(a, b, s[i], w[i], slot_ms, now)
  else
    expire_flight(a, now)
  end
  out[#out + 1] = granted
  out[#out + 1] = s[i]
  out[#out + 1] = t[i]
  out[#out + 1] = reset
  out[#out + 1] = retry[i]
  out[#out + 1] = would
end
return out
