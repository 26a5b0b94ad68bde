-- sweep: arg(1) most entries to handle. Claims the due entries of the
-- deadline index (ZREM inside this atomic script: each is handled by exactly
-- one node) and expires items (claim_expiry, shared with the scripts that
-- expire a due item on access), drops tombstones, keys and aliases.
-- Returns {'ok', handled, next deadline or -1, now}: the sweeper waits for
-- that deadline (in Redis's clock).
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, tonumber(arg(1)))
for _, m in ipairs(due) do
  local t, name = string.sub(m, 1, 2), string.sub(m, 3)
  if t == 'i:' then
    -- A due item is claimed (taken off the set) by claim_expiry, as the
    -- scripts that expire on access do; a tombstone or a stale entry here.
    local h = load_item(name)
    if not claim_expiry(name, h, now) then
      redis.call('ZREM', DUE, m)
      if h and h.state == 'gone' and tonumber(h.gc_at) <= now then
        redis.call('DEL', item_key(name), log_key(name))
      end
    end
  else
    redis.call('ZREM', DUE, m)
    if t == 'k:' then
      local d = tonumber(redis.call('HGET', key_key(name), 'deadline') or '')
      if d and d <= now then redis.call('DEL', key_key(name)) end
    elseif t == 'a:' then
      local d = tonumber(redis.call('HGET', alias_key(name), 'owner_deadline') or '')
      if d and d <= now then redis.call('DEL', alias_key(name)) end
    end
  end
end
local next_due = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
local next_at = -1
if next_due[2] then next_at = tonumber(next_due[2]) end
return {'ok', #due, next_at, now}
