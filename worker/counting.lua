--[[
counting.lua: count one project's events into its spike buckets, exactly once, and return the
history the spike decision needs. Driven by worker/counting.py, one call per project per batch,
made together with rate_limits.lua's through count_and_limit.lua: each script has one job and its
own watermark, so each is exactly-once on its own.

KEYS[1..k]  the counting watermark of each Kafka partition present in the batch, the highest
            offset already counted: {p:<project>}:wm:cnt:<topic>:<partition>
ARGV[1]     the project's hash tag "{p:<project>}", prefix of every key derived below
ARGV[2]     now, epoch seconds, injected by the caller (never Redis TIME, so tests control time)
ARGV[3]     bucket size, seconds
ARGV[4]     number of historical buckets before the current one
ARGV[5]     seconds a bucket key outlives the history window (slack for workers' clock skew)
ARGV[6]     seconds a watermark lives after its last write
ARGV[7]     r, the buckets of an issue's ring (its detector is adaptive), or 0 (mean)
ARGV[8..]   the events, 4 slots each: partition (index into KEYS), offset, issue id, timestamp

Keys derived from ARGV[1]. They carry the same hash tag as KEYS, so they live in the same Redis
Cluster slot; listing them in KEYS would add a dozen keys per issue to every call.
  <tag>:cnt:i:<issue>:<bucket_start>  events of one issue in one bucket (counter; r = 0 only)
  <tag>:ring:i:<issue>                the issue's last r buckets (string; r > 0 only), below
  <tag>:cnt:p:<bucket_start>          events of the project in one bucket (counter)
  <tag>:issues:<bucket_start>         issue ids the project saw in one bucket (set)

The ring keeps a day and more of one issue's buckets in 4 * (r + 2) bytes, where a counter per
bucket would cost a key each: big-endian unsigned 32-bit words, word 0 the index (start / size) of
the newest bucket written, word 1 the index of the oldest the ring has seen since it was created,
word 2 + (i % r) the count of bucket i (saturating). Moving to a newer bucket zeroes the words of
the buckets in between, so a word holds bucket i only while i > newest - r. It expires r buckets
after its last write.

An event counts in the bucket of its timestamp clamped into [now - history window, now]: a late
event lands in its own past bucket (or the oldest one kept), a future-dated one in the current
bucket; neither can create buckets outside the window. A bucket key expires once the bucket has
left the history window, plus the slack.

Worked example: buckets of 300 s, 11 of history, now = 3605, so the current bucket starts at 3600:
  EVALSHA <sha> 1 {p:7}:wm:cnt:exception_events:0  {p:7} 3605 300 11 60 604800 0
          1 41 issue-a 3601   1 42 issue-a 3000   1 43 issue-b 9999
  offset 41 counts in bucket 3600; offset 42 is late and counts in its own bucket 3000; offset 43
  is future-dated and counts in bucket 3600. The watermark becomes 43.
  Reply: {3600, {totals of buckets 300..3300}, {distinct issues of buckets 300..3300},
          {"issue-a", 1, <11 counts of buckets 300..3300, the 10th being 1>},
          {"issue-b", 1, <11 zeros>}}
  Histories run oldest to newest; issues come in order of first appearance in the call. With
  r = 300 instead of 0, each issue's entry is {issue, <its ring, the string above>}.

Guarantee: the call is atomic, and an event whose offset is at or below its partition's watermark
changes nothing, so a redelivered batch leaves every key as the first delivery left it. Its issue
is still reported, so the caller can decide again on the same numbers.
]]

local tag = ARGV[1]
local now = tonumber(ARGV[2])
local bucket_seconds = tonumber(ARGV[3])
local history = tonumber(ARGV[4])
local slack_seconds = tonumber(ARGV[5])
local watermark_ttl = tonumber(ARGV[6])
local ring = tonumber(ARGV[7])

local function bucket_of(timestamp)
  return math.floor(timestamp / bucket_seconds) * bucket_seconds
end

local function as_text(number)
  return string.format('%d', number)
end

local current_start = bucket_of(now)
local oldest_timestamp = now - history * bucket_seconds

local watermarks = {}
for k = 1, #KEYS do
  watermarks[k] = tonumber(redis.call('GET', KEYS[k])) or -1
end

local issue_order, issue_seen = {}, {}
local issue_increments, project_increments, bucket_issues = {}, {}, {}

for slot = 8, #ARGV, 4 do
  local partition = tonumber(ARGV[slot])
  local offset = tonumber(ARGV[slot + 1])
  local issue = ARGV[slot + 2]
  if not issue_seen[issue] then
    issue_seen[issue] = true
    issue_order[#issue_order + 1] = issue
  end
  if offset > watermarks[partition] then
    watermarks[partition] = offset
    local timestamp = math.min(math.max(tonumber(ARGV[slot + 3]), oldest_timestamp), now)
    local bucket = as_text(bucket_of(timestamp))
    local per_bucket = issue_increments[issue] or {}
    issue_increments[issue] = per_bucket
    per_bucket[bucket] = (per_bucket[bucket] or 0) + 1
    project_increments[bucket] = (project_increments[bucket] or 0) + 1
    bucket_issues[bucket] = bucket_issues[bucket] or {}
    bucket_issues[bucket][issue] = true
  end
end

local function ttl_of(bucket)
  return math.ceil(tonumber(bucket) + (history + 1) * bucket_seconds - now + slack_seconds)
end

local function increment(key, amount, bucket)
  redis.call('INCRBY', key, amount)
  redis.call('EXPIRE', key, ttl_of(bucket))
end

local function ring_key(issue)
  return tag .. ':ring:i:' .. issue
end

-- BITFIELD operations go to Redis in chunks: Lua's unpack takes a few thousand values at most,
-- and a ring of short buckets that skips a day of them zeroes thousands of words.
local RING_OPS_PER_CALL = 500

local function count_in_ring(issue, per_bucket)
  local key = ring_key(issue)
  local indices = {}
  for bucket in pairs(per_bucket) do
    indices[#indices + 1] = tonumber(bucket) / bucket_seconds
  end
  table.sort(indices)
  local header = redis.call('BITFIELD', key, 'GET', 'u32', '#0', 'GET', 'u32', '#1')
  local newest, oldest = header[1], header[2]
  local ops = {}
  local function flush()
    if #ops > 0 then
      redis.call('BITFIELD', key, 'OVERFLOW', 'SAT', unpack(ops))
      ops = {}
    end
  end
  local function word_op(op, word, value)
    ops[#ops + 1] = op
    ops[#ops + 1] = 'u32'
    ops[#ops + 1] = '#' .. as_text(word)
    ops[#ops + 1] = as_text(value)
    if #ops >= 4 * RING_OPS_PER_CALL then
      flush()
    end
  end
  if newest == 0 then
    newest, oldest = indices[1], indices[1]
    -- Written whole at once, so the ring's size never changes and its memory is known.
    word_op('SET', ring + 1, 0)
  end
  for _, index in ipairs(indices) do
    if index > newest then
      for skipped = math.max(newest + 1, index - ring + 1), index do
        word_op('SET', 2 + skipped % ring, 0)
      end
      newest = index
    end
    if index > newest - ring then
      oldest = math.min(oldest, index)
      word_op('INCRBY', 2 + index % ring, per_bucket[as_text(index * bucket_seconds)])
    end
  end
  word_op('SET', 0, newest)
  word_op('SET', 1, oldest)
  flush()
  redis.call('EXPIRE', key, ring * bucket_seconds)
end

for issue, per_bucket in pairs(issue_increments) do
  if ring > 0 then
    count_in_ring(issue, per_bucket)
  else
    for bucket, amount in pairs(per_bucket) do
      increment(tag .. ':cnt:i:' .. issue .. ':' .. bucket, amount, bucket)
    end
  end
end
for bucket, amount in pairs(project_increments) do
  increment(tag .. ':cnt:p:' .. bucket, amount, bucket)
  local set_key = tag .. ':issues:' .. bucket
  for issue in pairs(bucket_issues[bucket]) do
    redis.call('SADD', set_key, issue)
  end
  redis.call('EXPIRE', set_key, ttl_of(bucket))
end

for k = 1, #KEYS do
  if watermarks[k] >= 0 then
    redis.call('SET', KEYS[k], as_text(watermarks[k]), 'EX', watermark_ttl)
  end
end

-- Bucket starts oldest to newest; the last one is the current bucket.
local window = {}
for back = history, 0, -1 do
  window[#window + 1] = as_text(current_start - back * bucket_seconds)
end

local function counts_of(prefix)
  local keys = {}
  for i, bucket in ipairs(window) do
    keys[i] = prefix .. bucket
  end
  local values = redis.call('MGET', unpack(keys))
  local counts = {}
  for i = 1, #values do
    counts[i] = tonumber(values[i]) or 0
  end
  return counts
end

local project_totals = counts_of(tag .. ':cnt:p:')
table.remove(project_totals)
local project_issue_counts = {}
for i = 1, history do
  project_issue_counts[i] = redis.call('SCARD', tag .. ':issues:' .. window[i])
end

local reply = {current_start, project_totals, project_issue_counts}
for _, issue in ipairs(issue_order) do
  if ring > 0 then
    reply[#reply + 1] = {issue, redis.call('GET', ring_key(issue))}
  else
    local counts = counts_of(tag .. ':cnt:i:' .. issue .. ':')
    local current = table.remove(counts)
    local entry = {issue, current}
    for i = 1, #counts do
      entry[i + 2] = counts[i]
    end
    reply[#reply + 1] = entry
  end
end
return reply
