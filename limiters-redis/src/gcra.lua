-- limiters-redis: one exact GCRA decision, made atomically on the server.
--
-- KEYS[1]  the state: "s ns r cells ps pns", the theoretical arrival time
--          `tat` as whole seconds, nanoseconds (< 10^9) and ticks of
--          1/cells ns (< cells), the cells it was measured in, and the end
--          of a pause (seconds, nanoseconds; 0 0 for none).
-- KEYS[2]  optional: a list to RPUSH each admission's server time onto (ns).
-- ARGV     op ("take" | "peek" | "pause"), cells, a (s ns r), b (s ns r),
--          now (s ns, or two empty strings: the server's TIME).
--   take   a = n cells' worth (n * t), b = tau. Decided at `at`, the later
--          of now and the pause's end: admit if max(tat, at) + a <= at + b
--          and at is now; reply {1} or {0, s, ns, r} of the wait from now.
--   peek   b = tau: reply {1, s, ns, r} of now + tau - max(tat, now), or
--          {0} during a pause.
--   pause  a = the pause: nothing admitted before now + a. A pause spends
--          no credit (as the local limiter's): requests made during it are
--          decided as if made at its end.
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

-- The stored tat (a missing key: never used, or expired at full credit).
local tat = {0, 0, 0}
local pause = {0, 0, 0}
local stored = redis.call('GET', KEYS[1])
if stored then
  local s, ns, r, c, ps, pns =
    string.match(stored, '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
  if s then
    tat = {tonumber(s), tonumber(ns), tonumber(r)}
    pause = {tonumber(ps), tonumber(pns), 0}
    if tonumber(c) ~= cells then
      -- Written under another quota: round up to a whole ns.
      if tat[3] > 0 then tat = add({tat[1], tat[2], 0}, {0, 1, 0}) end
      tat[3] = 0
    end
  end
end
-- Requests during a pause are decided as at its end.
local at = now
if less(now, pause) then at = pause end
-- max(tat, at)
local base = at
if less(base, tat) then base = tat end

-- Stores `tat` and the pause, expiring when both are reached: an expired
-- key is full credit and no pause.
local function store(tat)
  local value = string.format('%d %d %d %d %d %d', tat[1], tat[2], tat[3], cells,
    pause[1], pause[2])
  if injected then
    redis.call('SET', KEYS[1], value)
    return
  end
  local last = tat
  if less(last, pause) then last = pause end
  if less(last, now) then last = now end
  local ahead = sub(last, now)
  local ms = ahead[1] * 1000 + math.floor(ahead[2] / 1000000) + 1
  redis.call('SET', KEYS[1], value, 'PX', string.format('%d', ms))
end

if op == 'take' then
  local new = add(base, a)
  local limit = add(at, b)
  local early = sub(at, now)
  if less(limit, new) then
    local wait = add(sub(new, limit), early)
    return {0, wait[1], wait[2], wait[3]}
  end
  if less(now, at) then
    return {0, early[1], early[2], early[3]}
  end
  store(new)
  if KEYS[2] then
    redis.call('RPUSH', KEYS[2], string.format('%d%09d', now[1], now[2]))
  end
  return {1}
elseif op == 'peek' then
  if less(now, pause) then return {0} end
  local limit = add(now, b)
  if less(limit, base) then return {0} end
  local slack = sub(limit, base)
  return {1, slack[1], slack[2], slack[3]}
elseif op == 'pause' then
  local until_ = add(now, a)
  if less(pause, until_) then
    pause = until_
    store(tat)
  end
  return {1}
end
return redis.error_reply('limiters-redis: unknown op ' .. tostring(op))
