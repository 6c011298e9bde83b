"""The Lua scripts Redis runs atomically. Times come from Redis' own clock (TIME, with
microseconds) so nodes with skewed clocks share one timeline; tests pass `now` instead.

GCRA_TAKE mirrors gcra.take: KEYS[1] the bucket, KEYS[2] the "Redis kept its data" marker;
ARGV emission, tolerance, want, now ("" for Redis' clock). Returns {granted, wait as a
string} (Redis truncates Lua numbers to integers). A bucket key that is missing while the
marker is there lapsed (idle long enough to be full: tat 0, a whole burst). With the marker
missing too, Redis lost its data (restarted without persistence, flushed, failed over) and
nobody knows how much of the burst was spent this period: the bucket starts as just spent
(tat = now + tolerance, one event now, then the rate), so a restart never lets a fresh burst
through on top of what went before. The marker has no expiry.

LEASE_ACQUIRE: KEYS the caps' sorted sets (member: lease id, score: expiry); ARGV lease id,
lease period, now (""), then one limit per key. Expired leases go first; the lease is added to
every set only if each has room. Returns 1 (held) or 0.

LEASE_RENEW: KEYS the sets; ARGV period, now (""), then lease ids: each lease's expiry moves
on (ZADD without XX: after a Redis restart the node's live leases are registered again).
"""

from __future__ import annotations

_NOW = """
local now
if ARGV[{index}] ~= nil and ARGV[{index}] ~= "" then
  now = tonumber(ARGV[{index}])
else
  local t = redis.call("TIME")
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

GCRA_TAKE = (
    _NOW.format(index=4)
    + """
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local stored = redis.call("GET", KEYS[1])
local tat
if stored then
  tat = tonumber(stored)
elseif redis.call("EXISTS", KEYS[2]) == 1 then
  tat = 0
else
  tat = now + tolerance
  redis.call("SET", KEYS[2], "1")
end
local start = math.max(tat, now)
local room = math.floor((now + tolerance - start) / emission + 1e-6) + 1
local granted = math.max(0, math.min(want, room))
if granted > 0 then
  local new_tat = start + granted * emission
  local ttl = math.ceil((new_tat - now) * 1000) + 1000
  redis.call("SET", KEYS[1], string.format("%.6f", new_tat), "PX", ttl)
  return {granted, "0"}
end
return {0, string.format("%.6f", math.max(0, start - tolerance - now))}
"""
)

LEASE_ACQUIRE = (
    _NOW.format(index=3)
    + """
local id = ARGV[1]
local period = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call("ZREMRANGEBYSCORE", key, "-inf", now)
  local limit = tonumber(ARGV[3 + i])
  if limit >= 0 and redis.call("ZCARD", key) >= limit then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call("ZADD", key, now + period, id)
  redis.call("PEXPIRE", key, math.ceil(period * 1000) + 1000)
end
return 1
"""
)

LEASE_RENEW = (
    _NOW.format(index=2)
    + """
local period = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  for i = 3, #ARGV do
    redis.call("ZADD", key, now + period, ARGV[i])
  end
  redis.call("PEXPIRE", key, math.ceil(period * 1000) + 1000)
end
return 1
"""
)
