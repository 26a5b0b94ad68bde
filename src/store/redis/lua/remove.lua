-- remove: arg(1) key, arg(2) id, arg(3) alias. Returns {'ok', id, seq}.
local now = now_ms()
local key = arg(1)
if not key_deadline(key, now) then return err('unknown_key') end
local id, e = resolve(arg(2), arg(3), now)
if not id then return e end
local h = load_item(id)
-- A due item the sweeper has not reached yet expires now, logged once.
claim_expiry(id, h, now)
if not is_live(h, now) then return err('gone', id) end
if access(h, key) < 3 then return err('not_owner_remove', id) end
return {'ok', id, end_item(id, h, 'remove', now, now)}
