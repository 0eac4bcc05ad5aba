--[[
count_and_limit.lua: one project's events counted (counting.lua) and charged against its rate
limits (rate_limits.lua) in one call, so a batch costs Redis one call per project. Driven by
worker/redis_stage.py, which prepends the two scripts to this one, each wrapped as a function of
(KEYS, ARGV): count_events and charge_rate_limits. Each keeps its own keys, arguments and
watermarks exactly as its header describes; this part only splits the call between them.

KEYS[1..c]      counting.lua's KEYS
KEYS[c+1..]     rate_limits.lua's KEYS
ARGV[1]         c, the number of counting keys
ARGV[2..8]      counting.lua's ARGV[1..7]
ARGV[9..18]     rate_limits.lua's ARGV[1..10]
ARGV[19..]      the events, 4 slots each: partition (its index among the batch's partitions, the
                same for both scripts), offset, issue id, timestamp; rate_limits.lua gets the
                first three of each

Worked example, two events of one partition (counting's example, with rate limits off):
  EVALSHA <sha> 3 {p:7}:wm:cnt:exception_events:0
          {p:7}:tb:p {p:7}:wm:tb:exception_events:0 {p:7}:tb:limited:exception_events:0
          1  {p:7} 3605 300 11 60 604800 0  {p:7} 3605 "" 0 0 "" 0 0 10000 604800
          1 41 issue-a 3601   1 42 issue-a 3000
  -> {<counting.lua's reply>, "aa"}

Guarantee: the whole call is atomic; each part is exactly-once on its own, as its header says.
]]

local counting_keys = tonumber(ARGV[1])
local count_keys, limit_keys = {}, {}
for i = 1, #KEYS do
  if i <= counting_keys then
    count_keys[#count_keys + 1] = KEYS[i]
  else
    limit_keys[#limit_keys + 1] = KEYS[i]
  end
end

local count_args, limit_args = {}, {}
for i = 2, 8 do
  count_args[#count_args + 1] = ARGV[i]
end
for i = 9, 18 do
  limit_args[#limit_args + 1] = ARGV[i]
end
for slot = 19, #ARGV, 4 do
  count_args[#count_args + 1] = ARGV[slot]
  count_args[#count_args + 1] = ARGV[slot + 1]
  count_args[#count_args + 1] = ARGV[slot + 2]
  count_args[#count_args + 1] = ARGV[slot + 3]
  limit_args[#limit_args + 1] = ARGV[slot]
  limit_args[#limit_args + 1] = ARGV[slot + 1]
  limit_args[#limit_args + 1] = ARGV[slot + 2]
end

return {count_events(count_keys, count_args), charge_rate_limits(limit_keys, limit_args)}
