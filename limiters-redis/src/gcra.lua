-- limiters-redis: one exact GCRA decision, made atomically on the server.
--
-- KEYS[1]  the state: "s ns r cells", the theoretical arrival time `tat` as
--          whole seconds, nanoseconds (< 10^9) and ticks of 1/cells ns
--          (< cells), plus the cells it was measured in.
-- KEYS[2]  optional: a list to RPUSH each admission's server time onto (ns).
-- ARGV     op ("take" | "peek" | "pause"), cells, a (s ns r), b (s ns r),
--          now (s ns, or two empty strings: the server's TIME).
--   take   a = n cells' worth (n * t), b = tau: admit if max(tat, now) + a
--          <= now + b; reply {1} or {0, s, ns, r} of how far past it is.
--   peek   b = tau: reply {1, s, ns, r} of now + tau - max(tat, now), or
--          {0} if that is negative (a pause in force).
--   pause  a = the pause, b = tau - t: tat = max(tat, now + a + b).
--
-- Every number is a whole number below 2^53, so Lua's doubles hold it
-- exactly: seconds stay below 2^43 (the client clamps a and b to 2^40 s and
-- `tat` never runs more than a + b past now), nanoseconds below 2 * 10^9,
-- ticks below 2^33. No division, no float: the same exact arithmetic as the
-- local limiter, in three parts.
local NS = 1000000000
local op = ARGV[1]
local cells = tonumber(ARGV[2])
local a = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])}
local b = {tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])}

local now
local injected = ARGV[9] ~= ''
if injected then
  -- Injected time (the tests drive the script on a manual timeline). The
  -- key then never expires: its TTL would run on the server's clock.
  now = {tonumber(ARGV[9]), tonumber(ARGV[10]), 0}
else
  -- TIME is non-deterministic: before Redis 5 a script that reads it may
  -- only write when its effects are replicated, not the script itself.
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = {tonumber(t[1]), tonumber(t[2]) * 1000, 0}
end

local function add(x, y)
  local s, ns, r = x[1] + y[1], x[2] + y[2], x[3] + y[3]
  if r >= cells then r = r - cells; ns = ns + 1 end
  if ns >= NS then ns = ns - NS; s = s + 1 end
  return {s, ns, r}
end

-- x - y, for x >= y.
local function sub(x, y)
  local s, ns, r = x[1] - y[1], x[2] - y[2], x[3] - y[3]
  if r < 0 then r = r + cells; ns = ns - 1 end
  if ns < 0 then ns = ns + NS; s = s - 1 end
  return {s, ns, r}
end

local function less(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  if x[2] ~= y[2] then return x[2] < y[2] end
  return x[3] < y[3]
end

-- max(tat, now): a missing key (never used, or expired at full credit) is now.
local base = now
local stored = redis.call('GET', KEYS[1])
if stored then
  local s, ns, r, c = string.match(stored, '^(%d+) (%d+) (%d+) (%d+)$')
  if s then
    local tat = {tonumber(s), tonumber(ns), tonumber(r)}
    if tonumber(c) ~= cells then
      -- Written under another quota: round up to a whole ns.
      if tat[3] > 0 then tat = add({tat[1], tat[2], 0}, {0, 1, 0}) end
      tat[3] = 0
    end
    if less(base, tat) then base = tat end
  end
end

-- Stores `tat`, expiring when it is reached: an expired key is full credit.
local function store(tat)
  local value = string.format('%d %d %d %d', tat[1], tat[2], tat[3], cells)
  if injected then
    redis.call('SET', KEYS[1], value)
    return
  end
  local ahead = sub(tat, now)
  local ms = ahead[1] * 1000 + math.floor(ahead[2] / 1000000) + 1
  redis.call('SET', KEYS[1], value, 'PX', string.format('%d', ms))
end

if op == 'take' then
  local tat = add(base, a)
  local limit = add(now, b)
  if less(limit, tat) then
    local over = sub(tat, limit)
    return {0, over[1], over[2], over[3]}
  end
  store(tat)
  if KEYS[2] then
    redis.call('RPUSH', KEYS[2], string.format('%d%09d', now[1], now[2]))
  end
  return {1}
elseif op == 'peek' then
  local limit = add(now, b)
  if less(limit, base) then return {0} end
  local slack = sub(limit, base)
  return {1, slack[1], slack[2], slack[3]}
elseif op == 'pause' then
  local floor = add(add(now, a), b)
  if less(base, floor) then store(floor) end
  return {1}
end
return redis.error_reply('limiters-redis: unknown op ' .. tostring(op))
