-- update: arg(1) key, arg(2) id, arg(3) alias, arg(4) intent id or '',
-- arg(5) value, arg(6) size. Returns {'ok', id, modified, seq}.
local now = now_ms()
local key = arg(1)
if not key_deadline(key, now) then return err('unknown_key') end
local id, e = resolve(arg(2), arg(3), now)
if not id then return e end
local h = load_item(id)
-- A due item the sweeper has not reached yet expires now, logged once.
claim_expiry(id, h, now)
if not is_live(h, now) then return err('gone', id) end
local level = access(h, key)
if level < 2 then return err('cannot_update', id) end
local size = tonumber(arg(6))
if size > C.max_size then return err('too_large', size) end
-- The owner's update is never locked out: it breaks the intent.
if h.intent_holder and h.intent_expires > now and arg(4) ~= h.intent_id and level < 3 then
  return err('locked', h.intent_expires - now)
end
local growth = size - h.size
if growth > 0 then
  local refused = bytes_refused(growth, key_count(h.owner, 'bytes'))
  if refused then return refused end
end
if growth ~= 0 then
  -- The owner key outlives its live items (an item's deadline is at most
  -- its owner's), so its hash is there.
  redis.call('HINCRBY', key_key(h.owner), 'bytes', growth)
  redis.call('HINCRBY', STATS, 'bytes', growth)
end
local seq = redis.call('INCR', SEQ)
-- `log`: the item has a log list now (retire gives it the tombstone's TTL),
-- whose first entry was logged at this time.
local first_at = log_update(id, seq, now, arg(5), tonumber(h.log or ''))
if h.intent_holder and h.intent_expires > now then
  redis.call('HSET', item_key(id), 'value', arg(5), 'size', size, 'modified', now,
    'log', first_at, 'intent_expires', now)
else
  redis.call('HSET', item_key(id), 'value', arg(5), 'size', size, 'modified', now,
    'log', first_at)
end
return {'ok', id, now, seq}
