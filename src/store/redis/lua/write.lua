-- write: arg(1) writer key, arg(2) new id, arg(3) lifetime ms (capped),
-- arg(4) readers, arg(5) updaters (space-separated), arg(6) alias or '',
-- arg(7) value, arg(8) size. Returns {'ok', modified, valid_till, seq}.
local now = now_ms()
local key, id, alias = arg(1), arg(2), arg(6)
local kk = key_key(key)
-- The key's deadline and counters in one call.
local k = redis.call('HMGET', kk, 'deadline', 'items', 'bytes')
local kd = tonumber(k[1] or '')
if not (kd and kd > now) then return err('unknown_key') end
if string.sub(key, 1, 2) ~= 'wk' then return err('not_writer') end
local size = tonumber(arg(8))
local deadline = math.min(now + tonumber(arg(3)), kd)
local alias_new = false
if alias ~= '' then
  local e
  alias_new, e = claim_alias(alias, key, now)
  if alias_new == nil then return e end
end
if tonumber(k[2] or '0') >= C.max_items_per_key then return err('quota_items') end
local refused = bytes_refused(key, size, tonumber(k[3] or '0'))
if refused then return refused end
if redis.call('EXISTS', item_key(id)) == 1 then return err('collision') end
-- `log` '': no log list yet (update makes it, retire reads this).
local fields = {'owner', key, 'state', 'live', 'value', arg(7), 'size', size, 'modified', now,
  'deadline', deadline, 'log', ''}
-- An empty key list is no field at all (load_item reads it as none).
if arg(4) ~= '' then table.insert(fields, 'readers'); table.insert(fields, arg(4)) end
if arg(5) ~= '' then table.insert(fields, 'updaters'); table.insert(fields, arg(5)) end
redis.call('HSET', item_key(id), unpack(fields))
redis.call('HINCRBY', kk, 'items', 1)
redis.call('HINCRBY', kk, 'bytes', size)
redis.call('HINCRBY', STATS, 'items', 1)
redis.call('HINCRBY', STATS, 'bytes', size)
redis.call('ZADD', DUE, deadline, 'i:' .. id)
if alias ~= '' then point_alias(alias, id, key, kd, alias_new) end
return {'ok', now, deadline, latest_seq()}
