-- sweep: arg(1) most entries to handle. Claims the due entries of the
-- deadline index (ZREM inside this atomic script: each is handled by exactly
-- one node) and expires items, drops tombstones, keys and aliases.
-- Returns {'ok', handled, next deadline or -1, now}: the sweeper waits for
-- that deadline (in Redis's clock).
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, tonumber(arg(1)))
for _, m in ipairs(due) do
  redis.call('ZREM', DUE, m)
  local t, name = string.sub(m, 1, 2), string.sub(m, 3)
  if t == 'i:' then
    local h = load_item(name)
    if h and h.state == 'live' and h.deadline <= now then
      retire(name, h, now)
      emit(name, 'expire', h.deadline, now, nil)
    elseif h and h.state == 'gone' and tonumber(h.gc_at) <= now then
      redis.call('DEL', item_key(name), log_key(name))
    end
  elseif t == 'k:' then
    local d = tonumber(redis.call('HGET', key_key(name), 'deadline') or '')
    if d and d <= now then redis.call('DEL', key_key(name)) end
  elseif t == 'a:' then
    local d = tonumber(redis.call('HGET', alias_key(name), 'owner_deadline') or '')
    if d and d <= now then redis.call('DEL', alias_key(name)) end
  end
end
local next_due = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
local next_at = -1
if next_due[2] then next_at = tonumber(next_due[2]) end
return {'ok', #due, next_at, now}
