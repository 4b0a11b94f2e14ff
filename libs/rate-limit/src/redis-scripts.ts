/**
 * Every script's first lines: `now` in ms, from ARGV[1], or from the Redis server's clock when it is ''; and
 * a bucket stored as `debt:written at:paid back at` (see `decayed` and `UNIT` in limits.ts, and `debtOf` in
 * the memory store): `decayed(key, perMinute, capacity)` reads its debt now, `keep(key, debt, perMinute)`
 * writes it, expiring when it is paid back.
 */
const PREAMBLE = `
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
else
  now = tonumber(ARGV[1])
end
local function decayed(key, perMinute, capacity)
  local stored = redis.call('GET', key)
  if not stored then return 0 end
  local debt, at, paid = string.match(stored, '^(%d+):(%d+):(%d+)$')
  if not debt or now >= tonumber(paid) then return 0 end
  debt = tonumber(debt)
  if capacity and debt > capacity then debt = capacity end
  local elapsed = now - tonumber(at)
  if elapsed < 0 then elapsed = 0 end
  local left = debt - elapsed * perMinute
  if left < 0 then return 0 end
  return left
end
local function keep(key, debt, perMinute)
  local ms = math.ceil(debt / perMinute)
  redis.call('SET', key, string.format('%d:%d:%d', debt, now, now + ms), 'PX', ms)
end
`;

/**
 * The Redis side of the limiter: one script per admission, so a check is one round trip and atomic across
 * every replica that shares the Redis. It mirrors MemoryRateLimitStore line for line (the contract suite
 * runs both). Every key of a subject carries the tenant as a hash tag, ready for a Redis Cluster slot; the
 * limiter itself connects to one Redis (a single node, or the primary behind Sentinel), not to a Cluster.
 *
 * KEYS: 1 request bucket, 2 concurrency leases (sorted set: ticket → expiry), 3 quota key prefix
 *       (the UTC day number is appended), 4 token bucket, 5 the ticket's marker.
 * ARGV: 1 now in ms ('' = the Redis server's TIME, one clock for every replica), 2 requests per minute,
 *       3 burst, 4 max concurrent, 5 lease TTL ms, 6 daily quota, 7 tokens per minute, 8 ticket,
 *       9 marker TTL ms. A limit of -1 is off; a rate of 0 refuses everything.
 *
 * Returns JSON: [allowed 0|1, refusing limit, retry after ms, [[type, limit, remaining, reset ms, burst
 * (requests_per_minute only)], ...]],
 * and for an admission the UTC day number it was counted on.
 * An admitted ticket's reply is kept under its marker: if the reply is lost and the command is sent again,
 * the second run returns the first answer and counts nothing (TESTS F3).
 */
export const ADMIT_SCRIPT = `${PREAMBLE}
local seen = redis.call('GET', KEYS[5])
if seen then return seen end

local states = {}
local charged = {}
local refused, retry = '', 0
local function refuse(kind, ms)
  if refused == '' or ms > retry then refused = kind; retry = ms end
end

local rpm = tonumber(ARGV[2])
local nextDebt = nil
if rpm == 0 then
  refuse('requests_per_minute', 60000)
  states[#states + 1] = {'requests_per_minute', 0, 0, 0}
elseif rpm > 0 then
  local burst = tonumber(ARGV[3])
  local capacity = burst * 60000
  local debt = decayed(KEYS[1], rpm, capacity)
  if debt + 60000 > capacity then
    refuse('requests_per_minute', math.ceil((debt + 60000 - capacity) / rpm))
    states[#states + 1] = {'requests_per_minute', rpm, 0, math.ceil(debt / rpm), burst}
  else
    nextDebt = debt + 60000
    charged[#charged + 1] = #states + 1
    states[#states + 1] = {'requests_per_minute', rpm, math.floor((capacity - nextDebt) / 60000), math.ceil(nextDebt / rpm), burst}
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
    charged[#charged + 1] = #states + 1
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
    charged[#charged + 1] = #states + 1
    states[#states + 1] = {'daily_quota', quota, quota - used - 1, midnight - now}
  end
end

local tpm = tonumber(ARGV[7])
if tpm == 0 then
  refuse('tokens_per_minute', 60000)
  states[#states + 1] = {'tokens_per_minute', 0, 0, 0}
elseif tpm > 0 then
  local capacity = tpm * 60000
  local debt = decayed(KEYS[4], tpm)
  local available = math.floor((capacity - debt) / 60000)
  if available <= 0 then
    refuse('tokens_per_minute', math.ceil((debt + 60000 - capacity) / tpm))
    states[#states + 1] = {'tokens_per_minute', tpm, 0, math.ceil(debt / tpm)}
  else
    states[#states + 1] = {'tokens_per_minute', tpm, available, math.ceil(debt / tpm)}
  end
end

if refused ~= '' then
  -- Nothing was spent: the limits that would have been charged keep their unit.
  for _, i in ipairs(charged) do states[i][3] = states[i][3] + 1 end
  return cjson.encode({0, refused, retry, states})
end
if nextDebt then keep(KEYS[1], nextDebt, rpm) end
if maxc >= 0 then
  local ttl = tonumber(ARGV[5])
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[8])
  redis.call('PEXPIRE', KEYS[2], ttl)
end
if quota >= 0 then
  redis.call('INCR', quotaKey)
  -- Relative: an absolute time from a caller's clock could already be past on the server's.
  redis.call('PEXPIRE', quotaKey, midnight - now + 3600000)
end
local reply = cjson.encode({1, '', 0, states, day})
redis.call('SET', KEYS[5], reply, 'PX', ARGV[9])
return reply
`;

/**
 * Undoes an admission whose answer never reached the caller (it timed out, or the reply was lost, and the
 * caller decided without Redis), if it ran at all: gives back its request, its concurrency slot and its
 * quota count, so that a Redis stall neither charges a tenant twice nor leaves a key's slots taken until
 * their lease expires. The ticket's marker is then 'void': running this twice, or the admission arriving
 * after it, changes nothing.
 * KEYS: 1 request bucket, 2 concurrency leases, 3 quota key prefix, 4 the ticket's marker.
 * ARGV: 1 now ('' = TIME), 2 ticket, 3 marker TTL ms. Returns 1 when an admission was undone.
 */
export const VOID_SCRIPT = `${PREAMBLE}
-- The slot goes whatever the marker says: it is the ticket itself, and the marker may have expired.
redis.call('ZREM', KEYS[2], ARGV[2])
local seen = redis.call('GET', KEYS[4])
redis.call('SET', KEYS[4], 'void', 'PX', ARGV[3])
if not seen or seen == 'void' then return 0 end
local ok, reply = pcall(cjson.decode, seen)
if not ok or reply[1] ~= 1 then return 0 end
for _, state in ipairs(reply[4]) do
  local kind, limit = state[1], state[2]
  if kind == 'requests_per_minute' and limit > 0 then
    local debt = decayed(KEYS[1], limit) - 60000
    if debt > 0 then keep(KEYS[1], debt, limit) else redis.call('DEL', KEYS[1]) end
  elseif kind == 'daily_quota' then
    local quotaKey = KEYS[3] .. ':' .. reply[5]
    if tonumber(redis.call('GET', quotaKey) or '0') > 0 then redis.call('DECR', quotaKey) end
  end
end
return 1
`;

/**
 * Charges tokens to a tenant's bucket, once per ticket.
 * KEYS: 1 token bucket, 2 the ticket's marker. ARGV: 1 now ('' = TIME), 2 tokens per minute, 3 tokens,
 * 4 marker TTL ms. Returns 1 when charged, 0 for a ticket already charged.
 */
export const RECORD_TOKENS_SCRIPT = `${PREAMBLE}
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[4]) then return 0 end
local tpm = tonumber(ARGV[2])
if tpm <= 0 then return 0 end
keep(KEYS[1], decayed(KEYS[1], tpm) + tonumber(ARGV[3]) * 60000, tpm)
return 1
`;
