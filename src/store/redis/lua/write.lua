-- write: a batch of writes (write_batch.rs gathers the writes that wait
-- while the previous batch is in Redis). arg(1) how many writes, then 8
-- arguments for each: writer key, new id, lifetime ms (capped), readers,
-- updaters (space-separated), alias or '', value, size. Returns {'ok', one
-- reply per write, in order}: {'ok', modified, valid_till, seq} or a refusal.
--
-- The writes apply one after another, exactly as that many calls would:
-- each sees the quotas the writes before it used. Only the reading and
-- bumping of the shared counters is gathered: each writer key's hash is
-- read once and its counters, like the store-wide ones, change once per
-- batch (two calls per key and two in all, instead of four per write).
local now = now_ms()
local n = tonumber(arg(1))
-- Per writer key in the batch: its deadline and the items/bytes it holds
-- (with the batch's writes so far), and what the batch added.
local keys = {}
local total_bytes = nil
local added_items, added_bytes = 0, 0
local replies = {'ok'}

local function key_state(key)
  local s = keys[key]
  if s == nil then
    local k = redis.call('HMGET', key_key(key), 'deadline', 'items', 'bytes')
    s = {deadline = tonumber(k[1] or ''), items = tonumber(k[2] or '0'),
      bytes = tonumber(k[3] or '0'), added_items = 0, added_bytes = 0}
    keys[key] = s
  end
  return s
end

local function write_one(base)
  local key, id, alias = arg(base + 1), arg(base + 2), arg(base + 6)
  local s = key_state(key)
  local kd = s.deadline
  if not (kd and kd > now) then return err('unknown_key') end
  if string.sub(key, 1, 2) ~= 'wk' then return err('not_writer') end
  local size = tonumber(arg(base + 8))
  local deadline = math.min(now + tonumber(arg(base + 3)), kd)
  local alias_new = false
  if alias ~= '' then
    local e
    alias_new, e = claim_alias(alias, key, now)
    if alias_new == nil then return e end
  end
  if s.items >= C.max_items_per_key then return err('quota_items') end
  total_bytes = total_bytes or stored_bytes()
  local refused = bytes_refused(size, s.bytes, total_bytes)
  if refused then return refused end
  if redis.call('EXISTS', item_key(id)) == 1 then return err('collision') end
  -- `log` '': no log list yet (update makes it, retire reads this).
  local fields = {'owner', key, 'state', 'live', 'value', arg(base + 7), 'size', arg(base + 8),
    'modified', now, 'deadline', deadline, 'log', ''}
  -- An empty key list is no field at all (load_item reads it as none).
  if arg(base + 4) ~= '' then table.insert(fields, 'readers'); table.insert(fields, arg(base + 4)) end
  if arg(base + 5) ~= '' then table.insert(fields, 'updaters'); table.insert(fields, arg(base + 5)) end
  redis.call('HSET', item_key(id), unpack(fields))
  s.items, s.bytes = s.items + 1, s.bytes + size
  s.added_items, s.added_bytes = s.added_items + 1, s.added_bytes + size
  total_bytes = total_bytes + size
  added_items, added_bytes = added_items + 1, added_bytes + size
  redis.call('ZADD', DUE, deadline, 'i:' .. id)
  if alias ~= '' then point_alias(alias, id, key, kd, alias_new) end
  return {'ok', now, deadline}
end

for i = 1, n do
  replies[i + 1] = write_one(1 + (i - 1) * 8)
end
for key, s in pairs(keys) do
  if s.added_items > 0 then
    redis.call('HINCRBY', key_key(key), 'items', s.added_items)
    redis.call('HINCRBY', key_key(key), 'bytes', s.added_bytes)
  end
end
if added_items > 0 then
  redis.call('HINCRBY', STATS, 'items', added_items)
  redis.call('HINCRBY', STATS, 'bytes', added_bytes)
end
-- A write takes no seq: each reply carries the latest (alias re-points do
-- not move it).
local seq = latest_seq()
for i = 2, n + 1 do
  if replies[i][1] == 'ok' then table.insert(replies[i], seq) end
end
return replies
