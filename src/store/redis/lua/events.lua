-- events: arg(1) key, arg(2) id, arg(3) alias, arg(4) since, arg(5) kind or
-- '', arg(6) '1' for the current value. Returns {'ok', id, oldest (-1: none),
-- gap (0/1), latest, value or '', then seq, at, kind for each event}.
local now = now_ms()
local key = arg(1)
if not key_deadline(key, now) then return err('unknown_key') end
local id, e = resolve(arg(2), arg(3), now)
if not id then return e end
local h = load_item(id)
-- A due item the sweeper has not reached yet expires now, logged once.
claim_expiry(id, h, now)
if not h then return err('no_log', id) end
if access(h, key) < 1 then return err('cannot_read', id) end
local since, want = tonumber(arg(4)), arg(5)
local d = redis.call('HMGET', item_key(id), 'dropped_update', 'dropped_remove', 'dropped_expire',
  'final')
local dropped = 0
if want == 'update' then dropped = tonumber(d[1] or '0')
elseif want == 'remove' then dropped = tonumber(d[2] or '0')
elseif want == 'expire' then dropped = tonumber(d[3] or '0')
else
  for i = 1, 3 do dropped = math.max(dropped, tonumber(d[i] or '0')) end
end
local cutoff = now - C.retention_ms
local out = {}
local oldest, newest_seq, newest_kind = -1, nil, nil
local last_seq = nil
-- The log: the list of updates, then a gone item's final event (retire).
-- Both count towards the most events kept: a final event past the most
-- drops the oldest update, as appending it to the list would have.
local log = {}
if h.log ~= '' then log = redis.call('LRANGE', log_key(id), 0, -1) end
if d[4] then table.insert(log, d[4]) end
local over = #log - C.max_events
for i, entry in ipairs(log) do
  local seq, at, kind = parse_logged(entry)
  local wanted = (want == '' or want == kind)
  if at < cutoff or i <= over then
    if wanted then dropped = math.max(dropped, seq) end
  else
    if oldest < 0 then oldest = seq end
    newest_seq, newest_kind = seq, kind
    if wanted and seq > since then
      table.insert(out, seq); table.insert(out, at); table.insert(out, kind)
      last_seq = seq
    end
  end
end
local value = ''
if arg(6) == '1' and is_live(h, now) and newest_kind == 'update' and last_seq == newest_seq then
  value = h.value
end
local latest = latest_seq()
local gap = 0
if dropped > since or since > latest then gap = 1 end
local reply = {'ok', id, oldest, gap, latest, value}
for _, v in ipairs(out) do table.insert(reply, v) end
return reply
