-- POST a non-streamed chat completion. wrk ... URL -- MODEL
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"model": "' .. (args[1] or "gpt-4o-mini") ..
    '", "messages": [{"role": "user", "content": "Say hello"}]}'
end
