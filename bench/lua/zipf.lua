-- q drawn from 1,000 queries with Zipf weights (s = 1): query k is asked 1/k as often as
-- the first, as an assistant's traffic is. wrk ... URL -- SEED
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
  math.randomseed((tonumber(args[1]) or 1) * 7919 + tid)
end
function request()
  local x, lo, hi = math.random(), 1, #cdf
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < x then lo = mid + 1 else hi = mid end
  end
  return wrk.format(nil, wrk.path .. "&q=topic" .. lo)
end
