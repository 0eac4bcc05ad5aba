--[[
rate_limits.lua: charge one project's events against its token buckets, exactly once. Driven by
worker/rate_limits.py, one call per project per batch, made together with counting.lua's through
count_and_limit.lua (see counting.lua's header for why they are two scripts, a watermark each).

KEYS[1]         the project's token bucket {p:<project>}:tb:p (hash: tokens, updated_at)
KEYS[2i]        for the i-th Kafka partition present in the batch, its rate-limit watermark, the
                highest offset already charged: {p:<project>}:wm:tb:<topic>:<partition>
KEYS[2i+1]      and its replay log, the offsets recently rate-limited and how (sorted set, score =
                offset, member = "<offset>:<outcome>"): {p:<project>}:tb:limited:<topic>:<partition>
ARGV[1]         the project's hash tag "{p:<project>}"; issue buckets are <tag>:tb:i:<issue>
                (same hash tag, same cluster slot; one key per issue would bloat KEYS)
ARGV[2]         now, epoch seconds, injected by the caller (never Redis TIME, so tests control time)
ARGV[3..5]      issue bucket: capacity ("" = no limit), refill tokens per second, key TTL seconds
ARGV[6..8]      project bucket: capacity ("" = no limit), refill tokens per second, key TTL seconds
ARGV[9]         how many offsets below the watermark the replay log keeps
ARGV[10]        seconds a watermark and a replay log live after their last write
ARGV[11..]      the events, 3 slots each: partition (index i as above), offset, issue id

Each event takes one token from its issue's bucket, then, only if that succeeded, one from the
project's bucket. A bucket holds at most its capacity and refills continuously; fractional tokens
carry over between calls while an event needs a whole one. A bucket key that expired (its TTL is
at least the time to refill completely) is simply full again.

Reply: one character per event, in order: "a" admitted, "i" limited by its issue's bucket, "p"
limited by the project's bucket.

Worked example: issues 5 events a minute, the project 3 a minute, five events of one issue:
  EVALSHA <sha> 3 {p:7}:tb:p {p:7}:wm:tb:exception_events:0 {p:7}:tb:limited:exception_events:0
          {p:7} 1000  5 0.08333333333333333 120  3 0.05 120  10000 604800
          1 10 issue-a  1 11 issue-a  1 12 issue-a  1 13 issue-a  1 14 issue-a
  -> "aaapp": the issue bucket let all five through (and is now empty), the project bucket only
  three. The watermark becomes 14; offsets 13 and 14 go to the replay log.

Guarantee: the call is atomic, and an event whose offset is at or below its partition's watermark
is a replay: it changes no bucket and gets the outcome it got the first time (from the replay
log; an offset older than the log is reported admitted). Calling the example again therefore
answers "aaapp" and leaves every key as it was.
]]

local tag = ARGV[1]
local now = tonumber(ARGV[2])
local replay_window = tonumber(ARGV[9])
local state_ttl = tonumber(ARGV[10])

local function as_text(number)
  return string.format('%d', number)
end

-- nil when the limit is off: take() then always succeeds and nothing is written.
local function open_bucket(key, capacity_arg, refill_arg, ttl_arg)
  local capacity = tonumber(capacity_arg)
  if capacity == nil then
    return nil
  end
  local state = redis.call('HMGET', key, 'tokens', 'updated_at')
  local tokens, updated_at = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or updated_at == nil then
    tokens, updated_at = capacity, now
  else
    -- A worker whose clock lags must not refill the bucket twice for the same seconds.
    local elapsed = math.max(0, now - updated_at)
    tokens = math.min(capacity, tokens + elapsed * tonumber(refill_arg))
    updated_at = math.max(updated_at, now)
  end
  return {key = key, tokens = tokens, updated_at = updated_at, ttl = tonumber(ttl_arg),
          charged = false}
end

local function take(bucket)
  if bucket == nil then
    return true
  end
  if bucket.tokens < 1 then
    return false
  end
  bucket.tokens = bucket.tokens - 1
  bucket.charged = true
  return true
end

local function save(bucket)
  if bucket ~= nil and bucket.charged then
    redis.call('HSET', bucket.key, 'tokens', string.format('%.17g', bucket.tokens),
               'updated_at', string.format('%.17g', bucket.updated_at))
    redis.call('EXPIRE', bucket.key, bucket.ttl)
  end
end

local function replayed_outcome(log_key, offset)
  local hit = redis.call('ZRANGEBYSCORE', log_key, offset, offset, 'LIMIT', 0, 1)
  if hit[1] then
    return string.sub(hit[1], -1)
  end
  return 'a'
end

local partitions = (#KEYS - 1) / 2
local watermarks = {}
for i = 1, partitions do
  watermarks[i] = tonumber(redis.call('GET', KEYS[2 * i])) or -1
end

local project_bucket = open_bucket(KEYS[1], ARGV[6], ARGV[7], ARGV[8])
local issue_limited = tonumber(ARGV[3]) ~= nil
local issue_buckets = {}

local function issue_bucket(issue)
  if not issue_limited then
    return nil
  end
  if issue_buckets[issue] == nil then
    issue_buckets[issue] = open_bucket(tag .. ':tb:i:' .. issue, ARGV[3], ARGV[4], ARGV[5])
  end
  return issue_buckets[issue]
end

local outcomes = {}

for slot = 11, #ARGV, 3 do
  local partition = tonumber(ARGV[slot])
  local offset = tonumber(ARGV[slot + 1])
  local issue = ARGV[slot + 2]
  local log_key = KEYS[2 * partition + 1]
  local outcome
  if offset <= watermarks[partition] then
    outcome = replayed_outcome(log_key, offset)
  else
    watermarks[partition] = offset
    if not take(issue_bucket(issue)) then
      outcome = 'i'
    elseif not take(project_bucket) then
      outcome = 'p'
    else
      outcome = 'a'
    end
    if outcome ~= 'a' then
      redis.call('ZADD', log_key, as_text(offset), as_text(offset) .. ':' .. outcome)
    end
  end
  outcomes[#outcomes + 1] = outcome
end

save(project_bucket)
for _, bucket in pairs(issue_buckets) do
  save(bucket)
end

for i = 1, partitions do
  if watermarks[i] >= 0 then
    redis.call('SET', KEYS[2 * i], as_text(watermarks[i]), 'EX', state_ttl)
    local log_key = KEYS[2 * i + 1]
    redis.call('ZREMRANGEBYSCORE', log_key, '-inf', '(' .. as_text(watermarks[i] - replay_window))
    redis.call('EXPIRE', log_key, state_ttl)
  end
end

return table.concat(outcomes)
