-- sweep: arg(1) most entries to handle. Claims the due entries of the
-- deadline index at once (they are the lowest ranks: one ZREMRANGEBYRANK
-- inside this atomic script, so each is handled by exactly one node) and
-- expires the due items among them as one batch: one INCRBY takes their seqs
-- (consecutive, in deadline order), each owner's counters change once, and
-- one stream entry carries them all (id `<last seq>-0`, fields `seq` (the
-- first), `event`, `ids` and `ats`, space-separated; unless the batch was
-- full, also `through` (now: every deadline up to it is handled) and `next`
-- (the next deadline, -1 if none)). Also drops expired keys and aliases
-- (tombstones and logs have a Redis TTL). Returns {'ok', handled, next
-- deadline or -1, now, now in µs}: the sweeper waits for that deadline (in
-- Redis's clock) to the µs, so it wakes when the deadline's millisecond
-- begins, not up to one later.
local clock = now_us()
local now = math.floor(clock / 1000)
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
-- A full batch: more may be due, and the sweeper sweeps again at once.
-- Otherwise every deadline up to now is handled, and the next is read.
local full = #due >= tonumber(arg(1))
local next_at = -1
if not full then
  local next_due = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
  if next_due[2] then next_at = tonumber(next_due[2]) end
end
if #expiring > 0 then
  local last = redis.call('INCRBY', SEQ, #expiring)
  local first = last - #expiring + 1
  local r = new_retired()
  local ends = tostring(now + C.retention_ms)
  local ids, ats = {}, {}
  for i, e in ipairs(expiring) do
    local id, h = e[1], e[2]
    retire(id, h, ends, r, logged(first + i - 1, h.deadline_text, 'expire'))
    ids[i], ats[i] = id, h.deadline_text
  end
  flush_retired(r)
  local fields = {'seq', first, 'event', 'expire',
    'ids', table.concat(ids, ' '), 'ats', table.concat(ats, ' ')}
  if not full then
    -- What this sweep covered, for the other nodes' sweepers (sweeper.rs):
    -- every deadline up to `through` is handled; `next` is the next one.
    for _, v in ipairs({'through', now, 'next', next_at}) do table.insert(fields, v) end
  end
  redis.call('XADD', STREAM, 'MAXLEN', '~', C.stream_max, last .. '-0', unpack(fields))
end
if full then return {'ok', #due, now, now, clock} end
return {'ok', #due, next_at, now, clock}
