-- One GCRA step of fb_core::rate_limit::decide, atomic because Redis runs a script alone.
-- KEYS[1]: the bucket. ARGV[1]: the quota's interval in µs; ARGV[2]: its capacity in µs
-- (burst × interval). Time is Redis' own clock, the same for every node.
-- Returns {allowed (0 or 1), now in µs, the stored TAT in µs or -1}: the caller works out
-- remaining, retry-after and reset from the same numbers with the same function.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local stored = tonumber(redis.call('GET', KEYS[1]))
local tat = now
if stored and stored > now then
  tat = stored
end
local new_tat = tat + interval
if now < new_tat - capacity then
  return {0, now, stored or -1}
end
-- The key lives until the bucket is full again; no key then means a full bucket, as it should.
-- '%.0f': Lua's default number formatting would write 1.8e+15 and lose the microseconds.
local ttl_ms = math.ceil((new_tat - now) / 1000)
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', ttl_ms))
return {1, now, stored or -1}
