-- sweep: arg(1) most entries to handle. Claims the due entries of the
-- deadline index at once (they are the lowest ranks: one ZREMRANGEBYRANK
-- inside this atomic script, so each is handled by exactly one node) and
-- expires the due items among them as one batch: one INCRBY takes their seqs
-- (consecutive, in deadline order), each owner's counters change once, and
-- one stream entry carries them all (id `<last seq>-0`, fields `seq` (the
-- first), `event`, `ids` and `ats`, space-separated; a single expiry is an
-- ordinary entry). Also drops expired keys and aliases (tombstones and logs
-- have a Redis TTL). Returns {'ok', handled, next deadline or -1, now}: the
-- sweeper waits for that deadline (in Redis's clock).
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
if #expiring == 1 then
  end_item(expiring[1][1], expiring[1][2], 'expire', expiring[1][2].deadline, now)
elseif #expiring > 1 then
  local last = redis.call('INCRBY', SEQ, #expiring)
  local first = last - #expiring + 1
  local r = new_retired()
  local ids, ats = {}, {}
  for i, e in ipairs(expiring) do
    local id, h = e[1], e[2]
    retire(id, h, now, r, logged(first + i - 1, h.deadline, 'expire'))
    ids[i], ats[i] = id, h.deadline
  end
  flush_retired(r)
  redis.call('XADD', STREAM, 'MAXLEN', '~', C.stream_max, last .. '-0',
    'seq', first, 'event', 'expire', 'ids', table.concat(ids, ' '), 'ats', table.concat(ats, ' '))
end
-- A full batch: more may be due, and the sweeper sweeps again at once.
if #due >= tonumber(arg(1)) then return {'ok', #due, now, now} end
local next_due = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
local next_at = -1
if next_due[2] then next_at = tonumber(next_due[2]) end
return {'ok', #due, next_at, now}
