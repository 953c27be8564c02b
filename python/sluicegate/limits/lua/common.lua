-- Shared by every sluicegate limits script (prepended when the script is registered).
--
-- A window line (requests or tokens per window) is two keys: a hash `H` whose fields are slot
-- numbers (slot k is [k * slot_ms, (k + 1) * slot_ms) of the caller's clock) holding what was
-- counted in that slot, plus `t`, the sum of those fields; and a sorted set `H:z` of the slot
-- numbers (scored by themselves) so old slots are found without reading the hash. A concurrent
-- line is one sorted set of grant ids scored by expiry (ms of the caller's clock).
--
-- Time always comes from the caller (ARGV), never from Redis TIME: every instance and test uses its
-- own clock, and TTLs are relative (PEXPIRE) so a clock at another date still expires keys.
-- Counts stay below 2^53 (the Python side refuses larger limits and costs) and are written with
-- HINCRBY from strings (`fmt`), never as Lua numbers.

local function fmt(n)
  return string.format('%d', n)
end

-- The newest slot counted on window line (h, z), or nil.
local function newest_slot(z)
  local top = redis.call('ZREVRANGE', z, 0, 0)
  if top[1] then
    return tonumber(top[1])
  end
  return nil
end

-- Drop the slots of window line (h, z) older than `lo`, keeping `t` the sum of the rest.
local function evict(h, z, lo)
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', '(' .. fmt(lo), 'LIMIT', 0, 1000)
    if #old == 0 then
      return
    end
    local vals = redis.call('HMGET', h, unpack(old))
    local sum = 0
    for _, v in ipairs(vals) do
      sum = sum + tonumber(v or '0')
    end
    redis.call('HDEL', h, unpack(old))
    redis.call('ZREM', z, unpack(old))
    if sum ~= 0 then
      redis.call('HINCRBY', h, 't', fmt(-sum))
    end
  end
end

-- The slot the call counts in (`s` from the caller's clock, or the newest slot already counted if
-- another clock is ahead: that only keeps it longer in the window), after dropping old slots.
local function advance(h, z, s, w)
  local newest = newest_slot(z)
  if newest and newest > s then
    s = newest
  end
  evict(h, z, s - w)
  return s
end

local function total(h)
  return tonumber(redis.call('HGET', h, 't') or '0')
end

-- Add `delta` to slot `k` (never below 0) if it is in the window [lo, s].
local function adjust(h, z, k, delta, lo, s)
  if delta == 0 or k < lo or k > s then
    return
  end
  local field = fmt(k)
  local cur = tonumber(redis.call('HGET', h, field) or '0')
  local nxt = math.max(0, cur + delta)
  if nxt == cur then
    return
  end
  redis.call('HINCRBY', h, 't', fmt(nxt - cur))
  if nxt == 0 then
    redis.call('HDEL', h, field)
    redis.call('ZREM', z, field)
  else
    redis.call('HSET', h, field, fmt(nxt))
    redis.call('ZADD', z, k, field)
  end
end

-- Apply "slot:delta,slot:delta" adjustments (an instance's batched token settlements and unused
-- lease slices of ended slots).
local function adjust_all(h, z, csv, lo, s)
  for k, d in string.gmatch(csv, '(%-?%d+):(%-?%d+)') do
    adjust(h, z, tonumber(k), tonumber(d), lo, s)
  end
end

local function count(h, z, s, n)
  if n > 0 then
    local field = fmt(s)
    redis.call('HINCRBY', h, field, fmt(n))
    redis.call('HINCRBY', h, 't', fmt(n))
    redis.call('ZADD', z, s, field)
  end
end

-- Until everything counted on the line has left the window (0: nothing counted).
local function reset_ms(z, t, w, slot_ms, now)
  if t <= 0 then
    return 0
  end
  local newest = newest_slot(z)
  if not newest then
    return 0
  end
  return math.max(0, (newest + w + 1) * slot_ms - now)
end

-- Until `need` fits (0: now; -1: never, it is above the limit), oldest slots leaving first. Reads
-- the oldest slots 64 at a time and stops as soon as enough have left: a refusal costs about as
-- much on an hour-long window as on a minute-long one.
local function retry_ms(h, z, t, need, limit, w, slot_ms, now)
  if need > limit then
    return -1
  end
  if t + need <= limit then
    return 0
  end
  local left, from, last = t, 0, nil
  while true do
    local slots = redis.call('ZRANGE', z, from, from + 63)
    if #slots == 0 then
      break
    end
    local vals = redis.call('HMGET', h, unpack(slots))
    for i, k in ipairs(slots) do
      left = left - tonumber(vals[i] or '0')
      last = tonumber(k)
      if left + need <= limit then
        return math.max(0, (last + w + 1) * slot_ms - now)
      end
    end
    from = from + 64
  end
  if last == nil then
    return 0
  end
  return math.max(0, (last + w + 1) * slot_ms - now)
end

-- Keys live until their newest slot has left the window, by the caller's clock.
local function expire_window(h, z, s, w, slot_ms, now)
  local ttl = math.max(1, (s + w + 1) * slot_ms - now)
  redis.call('PEXPIRE', h, ttl)
  redis.call('PEXPIRE', z, ttl)
end

-- A concurrent line's set lives as long as its latest entry (never shortened by a caller whose
-- clock is behind another's).
local function expire_flight(c, now)
  local last = redis.call('ZRANGE', c, -1, -1, 'WITHSCORES')
  if last[2] then
    local ttl = math.max(1, tonumber(last[2]) - now)
    if redis.call('PTTL', c) < ttl then
      redis.call('PEXPIRE', c, ttl)
    end
  end
end
