-- alias: arg(1) writer key, arg(2) alias name, arg(3) target id, arg(4)
-- target alias. Returns {'ok', id}.
local now = now_ms()
local key, name = arg(1), arg(2)
local kd = key_deadline(key, now)
if not kd then return err('unknown_key') end
if string.sub(key, 1, 2) ~= 'wk' then return err('not_writer') end
local id, e = resolve(arg(3), arg(4), now)
if not id then return e end
local h = load_item(id)
if not is_live(h, now) then return err('gone', id) end
if access(h, key) < 3 then return err('not_owner_alias', id) end
local is_new
is_new, e = claim_alias(name, key, now)
if is_new == nil then return e end
point_alias(name, id, key, kd, is_new)
return {'ok', id}
