-- sweep: arg(1) most entries to handle. Claims the due entries of the
-- deadline index at once (they are the lowest ranks: one ZREMRANGEBYRANK
-- inside this atomic script, so each is handled by exactly one node) and
-- expires the due items among them as one batch: one INCRBY takes their seqs
-- (consecutive, in deadline order) and each owner's counters change once.
-- Also drops expired keys and aliases (tombstones and logs have a Redis TTL).
-- Returns {'ok', handled, next deadline or -1, now}: the sweeper waits for
-- that deadline (in Redis's clock).
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, tonumber(arg(1)))
if #due > 0 then redis.call('ZREMRANGEBYRANK', DUE, 0, #due - 1) end
local expiring = {}
for _, m in ipairs(due) do
  local t, name = string.sub(m, 1, 2), string.sub(m, 3)
  if t == 'i:' then
    local h = load_item(name, EXPIRY_FIELDS)
    if is_due(h, now) then
      table.insert(expiring, {name, h})
    elseif h and h.state == 'gone' and tonumber(h.gc_at or '') and tonumber(h.gc_at) <= now then
      -- A tombstone from an effex version without tombstone TTLs.
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
if #expiring > 0 then
  local first = redis.call('INCRBY', SEQ, #expiring) - #expiring
  local r = new_retired()
  for i, e in ipairs(expiring) do expire(e[1], e[2], now, first + i, r) end
  flush_retired(r)
end
local next_due = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
local next_at = -1
if next_due[2] then next_at = tonumber(next_due[2]) end
return {'ok', #due, next_at, now}
