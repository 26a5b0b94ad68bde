-- make_keys: arg(1) lifetime ms, arg(2..) the new keys (made in Rust).
-- Returns {'ok', valid_till}.
local now = now_ms()
local deadline = now + tonumber(arg(1))
local i = 2
while arg(i) do
  if redis.call('EXISTS', key_key(arg(i))) == 1 then return err('collision') end
  i = i + 1
end
i = 2
while arg(i) do
  local key = arg(i)
  if string.sub(key, 1, 2) == 'wk' then
    redis.call('HSET', key_key(key), 'deadline', deadline, 'items', 0, 'bytes', 0, 'aliases', 0)
  else
    redis.call('HSET', key_key(key), 'deadline', deadline)
  end
  redis.call('ZADD', DUE, deadline, 'k:' .. key)
  i = i + 1
end
return {'ok', deadline}
