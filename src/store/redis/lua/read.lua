-- read: arg(1) key, arg(2) id, arg(3) alias, arg(4) '1' to take an update
-- intent, arg(5) the new intent id. Returns {'ok', id, value, modified, seq,
-- valid_till, intent_id, intent_expires} (the intent fields only with intent).
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
if arg(4) ~= '1' then
  if level < 1 then return err('cannot_read', id) end
  return {'ok', id, h.value, tonumber(h.modified), latest_seq(), h.deadline}
end
if level < 2 then return err('cannot_update', id) end
-- The intent rules (see intent.rs): another key's intent in force locks; the
-- holder renews within its total hold, then waits one lifetime after its
-- last lock ended (at the hold, or earlier by its own update).
local since = now
if h.intent_holder and h.intent_holder ~= key then
  if h.intent_expires > now then return err('locked', h.intent_expires - now) end
elseif h.intent_holder then
  local hold_end = h.intent_since + C.intent_max_hold_ms
  local cooled = h.intent_expires + C.intent_lifetime_ms
  if now < hold_end then
    since = h.intent_since
  elseif now < cooled then
    return err('locked', cooled - now)
  end
end
local expires = math.min(now + C.intent_lifetime_ms, since + C.intent_max_hold_ms)
redis.call('HSET', item_key(id), 'intent_id', arg(5), 'intent_holder', key,
  'intent_since', since, 'intent_expires', expires)
return {'ok', id, h.value, tonumber(h.modified), latest_seq(), h.deadline, arg(5), expires}
