-- Loop detection for one call: every rule of one key, in one script (policy/loop_state.py).
-- KEYS[1]: the key's hash (rate buckets b:<n> of `w` ms, `first` seen, the baseline's sum `bt` for
--   bucket/size `bf`, block `until`, throttle `last`)
-- KEYS[2]: the request's hash (recent times `ts`, block `until`, throttle `last`)
-- ARGV[1]: now, ms, the caller's clock (never Redis TIME)
-- ARGV[2..10]: the rate rule, ARGV[11..19]: the repeat rule, each
--   present, enforce, action (0 monitor, 1 throttle, 2 block), window_ms,
--   buckets (rate: baseline_s / window_s) or max_repeats (repeat), factor in thousandths,
--   min_requests, cooldown_ms, throttle_interval_ms
-- Returns {code, count, baseline_milli, until} for rate, then for repeat; code -1: not judged,
-- else 0 ok, 1 monitor, 2 would_block, 3 would_throttle, 4 block, 5 cooling, 6 throttle,
-- 7 throttle_pass.
local now = tonumber(ARGV[1])
local function rule(o)
  return {
    present = tonumber(ARGV[o + 1]), enforce = tonumber(ARGV[o + 2]), action = tonumber(ARGV[o + 3]),
    window = tonumber(ARGV[o + 4]), n = tonumber(ARGV[o + 5]), factor = tonumber(ARGV[o + 6]),
    min = tonumber(ARGV[o + 7]), cooldown = tonumber(ARGV[o + 8]), interval = tonumber(ARGV[o + 9]),
  }
end
local rate, rep = rule(1), rule(10)
local K, H = KEYS[1], KEYS[2]
local FAR = -1e18

local function int(v)
  return string.format('%d', v)
end

local function num(v, default)
  if v then return tonumber(v) end
  return default
end

-- A detection's outcome, and the throttle's `last` after it.
local function act(r, last)
  if r.action == 0 then return 1, last end
  if r.enforce == 0 then
    if r.action == 2 then return 2, last end
    return 3, last
  end
  if r.action == 2 then return 4, last end
  if now - last >= r.interval then return 7, now end
  return 6, last
end

if rate.present == 1 and rate.enforce == 1 then
  local until_ = num(redis.call('HGET', K, 'until'), 0)
  if until_ > now then return {5, 0, 0, until_, -1, 0, 0, 0} end
end
if rep.present == 1 and rep.enforce == 1 then
  local until_ = num(redis.call('HGET', H, 'until'), 0)
  if until_ > now then return {-1, 0, 0, 0, 5, 0, 0, until_} end
end

local out = {-1, 0, 0, 0, -1, 0, 0, 0}
if rate.present == 1 then
  local cur = math.floor(now / rate.window)
  local w = redis.call('HGET', K, 'w')
  if num(w, 0) ~= rate.window then -- a rule with another window: the buckets count in other units
    for _, f in ipairs(redis.call('HKEYS', K)) do
      if string.sub(f, 1, 2) == 'b:' or f == 'first' or f == 'bf' then redis.call('HDEL', K, f) end
    end
    redis.call('HSET', K, 'w', int(rate.window))
  end
  local count = redis.call('HINCRBY', K, 'b:' .. int(cur), 1)
  redis.call('HSETNX', K, 'first', int(now))
  local first = tonumber(redis.call('HGET', K, 'first'))
  if count == 1 then -- the first call of its bucket: forget the buckets older than the baseline
    for _, f in ipairs(redis.call('HKEYS', K)) do
      if string.sub(f, 1, 2) == 'b:' and tonumber(string.sub(f, 3)) < cur - rate.n then
        redis.call('HDEL', K, f)
      end
    end
  end
  -- The baseline's sum, kept with the bucket and size it is for: the past buckets change no more.
  local base_for = int(cur) .. '/' .. int(rate.n)
  local cached = redis.call('HMGET', K, 'bf', 'bt')
  local total = 0
  if cached[1] == base_for then
    total = tonumber(cached[2])
  else
    local names = {}
    for b = cur - rate.n, cur - 1 do names[#names + 1] = 'b:' .. int(b) end
    for _, v in ipairs(redis.call('HMGET', K, unpack(names))) do
      if v then total = total + tonumber(v) end
    end
    redis.call('HSET', K, 'bf', base_for, 'bt', int(total))
  end
  local baseline = math.floor(total * 1000 / rate.n)
  redis.call('PEXPIRE', K, math.max((rate.n + 1) * rate.window, rate.cooldown, rate.interval) + 1000)
  local judged = first <= (cur - rate.n) * rate.window -- seen over the whole baseline
  if (not judged) or count < rate.min or count * rate.n * 1000 <= rate.factor * total then
    out[1], out[2], out[3] = 0, count, baseline
  else
    local code, last = act(rate, num(redis.call('HGET', K, 'last'), FAR))
    local until_ = 0
    if code == 4 then
      until_ = now + rate.cooldown
      redis.call('HSET', K, 'until', int(until_))
    else
      if code == 7 then redis.call('HSET', K, 'last', int(now)) end
      if code == 6 then until_ = last + rate.interval end
    end
    out[1], out[2], out[3], out[4] = code, count, baseline, until_
    if code == 4 or code == 6 then return out end
  end
end

if rep.present == 1 then
  local times = {}
  local ts = redis.call('HGET', H, 'ts')
  if ts then
    for t in string.gmatch(ts, '[^,]+') do
      local v = tonumber(t)
      if v > now - rep.window then times[#times + 1] = v end
    end
  end
  local pos = #times + 1 -- in order, should another instance's clock be a little behind
  while pos > 1 and times[pos - 1] > now do pos = pos - 1 end
  table.insert(times, pos, now)
  while #times > rep.n + 1 do table.remove(times, 1) end
  local count = #times
  redis.call('PEXPIRE', H, math.max(rep.window, rep.cooldown, rep.interval) + 1000)
  if count <= rep.n then
    local parts = {}
    for i, v in ipairs(times) do parts[i] = int(v) end
    redis.call('HSET', H, 'ts', table.concat(parts, ','))
    out[5], out[6] = 0, count
    return out
  end
  local code, last = act(rep, num(redis.call('HGET', H, 'last'), FAR))
  local until_ = 0
  if code == 4 then
    until_ = now + rep.cooldown
    redis.call('HSET', H, 'until', int(until_))
    redis.call('HDEL', H, 'ts')
  else
    local parts = {}
    for i, v in ipairs(times) do parts[i] = int(v) end
    redis.call('HSET', H, 'ts', table.concat(parts, ','))
    if code == 7 then redis.call('HSET', H, 'last', int(now)) end
    if code == 6 then until_ = last + rep.interval end
  end
  out[5], out[6], out[8] = code, count, until_
end
return out
