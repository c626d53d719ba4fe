-- Every request a new q (a cache miss): "<run prefix>t<thread>n<counter>", appended to the URL.
-- wrk ... URL -- PREFIX
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  prefix = args[1] or "d"
  counter = 0
end
function request()
  counter = counter + 1
  return wrk.format(nil, wrk.path .. "&q=" .. prefix .. "t" .. tid .. "n" .. counter)
end
