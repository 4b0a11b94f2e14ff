/** Both scripts' first lines: `now` in ms, from ARGV[1], or from the Redis server's clock when it is ''. */
const NOW = `
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
`;

/**
 * The Redis side of the limiter: one script per admission, so a check is one round trip and atomic across
 * every replica that shares the Redis. It mirrors MemoryRateLimitStore line for line (the contract suite
 * runs both). Every key of a subject carries the tenant as a hash tag, so they share a Cluster slot.
 *
 * KEYS: 1 request bucket (TAT, ms), 2 concurrency leases (sorted set: ticket → expiry), 3 quota key prefix
 *       (the UTC day number is appended), 4 token bucket (TAT, ms), 5 the ticket's marker.
 * ARGV: 1 now in ms ('' = the Redis server's TIME, one clock for every replica), 2 requests per minute,
 *       3 burst, 4 max concurrent, 5 lease TTL ms, 6 daily quota, 7 tokens per minute, 8 ticket,
 *       9 marker TTL ms. A limit of -1 is off.
 *
 * Returns JSON: [allowed 0|1, refusing limit, retry after ms, [[type, limit, remaining, reset ms], ...]].
 * An admitted ticket's reply is kept under its marker: if the reply is lost and the command is sent again,
 * the second run returns the first answer and counts nothing (TESTS F3).
 */
export const ADMIT_SCRIPT = `${NOW}
local seen = redis.call('GET', KEYS[5])
if seen then return seen end

local states = {}
local refused, retry = '', 0
local function refuse(kind, ms)
  if refused == '' or ms > retry then refused = kind; retry = ms end
end

local rpm = tonumber(ARGV[2])
local nextTat = nil
if rpm >= 0 then
  local interval = 60000 / rpm
  local burst = tonumber(ARGV[3])
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  local candidate = tat + interval
  local allowAt = candidate - interval * burst
  if allowAt > now then
    refuse('requests_per_minute', allowAt - now)
    states[#states + 1] = {'requests_per_minute', rpm, 0, tat - now}
  else
    nextTat = candidate
    states[#states + 1] = {'requests_per_minute', rpm, math.floor((now - allowAt) / interval), candidate - now}
  end
end

local maxc = tonumber(ARGV[4])
if maxc >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local inFlight = redis.call('ZCARD', KEYS[2])
  if inFlight >= maxc then
    refuse('concurrency', 1000)
    states[#states + 1] = {'concurrency', maxc, 0, 0}
  else
    states[#states + 1] = {'concurrency', maxc, maxc - inFlight - 1, 0}
  end
end

local quota = tonumber(ARGV[6])
local day = math.floor(now / 86400000)
local midnight = (day + 1) * 86400000
local quotaKey = KEYS[3] .. ':' .. day
if quota >= 0 then
  local used = tonumber(redis.call('GET', quotaKey) or '0')
  if used >= quota then
    refuse('daily_quota', midnight - now)
    states[#states + 1] = {'daily_quota', quota, 0, midnight - now}
  else
    states[#states + 1] = {'daily_quota', quota, quota - used - 1, midnight - now}
  end
end

local tpm = tonumber(ARGV[7])
if tpm >= 0 then
  local perToken = 60000 / tpm
  local debt = tonumber(redis.call('GET', KEYS[4]) or '0') - now
  if debt < 0 then debt = 0 end
  local available = math.floor((60000 - debt) / perToken)
  if available <= 0 then
    refuse('tokens_per_minute', debt - 60000 + perToken)
    states[#states + 1] = {'tokens_per_minute', tpm, 0, debt}
  else
    states[#states + 1] = {'tokens_per_minute', tpm, available, debt}
  end
end

if refused ~= '' then
  return cjson.encode({0, refused, retry, states})
end
if nextTat then
  redis.call('SET', KEYS[1], string.format('%.3f', nextTat), 'PX', math.ceil(nextTat - now))
end
if maxc >= 0 then
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[8])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if quota >= 0 then
  redis.call('INCR', quotaKey)
  redis.call('PEXPIREAT', quotaKey, midnight + 3600000)
end
local reply = cjson.encode({1, '', 0, states})
redis.call('SET', KEYS[5], reply, 'PX', ARGV[9])
return reply
`;

/**
 * Charges tokens to a tenant's bucket, once per ticket.
 * KEYS: 1 token bucket, 2 the ticket's marker. ARGV: 1 now ('' = TIME), 2 tokens per minute, 3 tokens,
 * 4 marker TTL ms. Returns 1 when charged, 0 for a ticket already charged.
 */
export const RECORD_TOKENS_SCRIPT = `${NOW}
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then return 0 end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + tonumber(ARGV[3]) * 60000 / tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now))
return 1
`;
