-- q drawn from 1,000 queries with Zipf weights (s = 1): query k is asked 1/k as often as
-- the first, as an assistant's traffic is. wrk ... URL -- PREFIX
-- The queries are "<run prefix>topic<k>": every run starts cold, as the first fill of a
-- cache costs misses, and its seed comes from the prefix.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  local n, total = 1000, 0
  cdf = {}
  for k = 1, n do total = total + 1 / k; cdf[k] = total end
  for k = 1, n do cdf[k] = cdf[k] / total end
  prefix = args[1] or "z"
  local seed = 0
  for i = 1, #prefix do seed = (seed * 31 + prefix:byte(i)) % 2147483647 end
  math.randomseed(seed * 7919 + tid)
end
function request()
  local x, lo, hi = math.random(), 1, #cdf
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < x then lo = mid + 1 else hi = mid end
  end
  return wrk.format(nil, wrk.path .. "&q=" .. prefix .. "topic" .. lo)
end
