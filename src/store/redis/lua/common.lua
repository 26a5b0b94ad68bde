-- effex: the helpers every operation shares, defined once when Redis loads
-- the library (see scripts.rs), not on every call. Each operation's function
-- calls begin(args) first: args[1..10] are the store's rules (see
-- Shared::run), the operation's own arguments follow, read with arg(i).
-- Redis runs one function at a time, so these per-call upvalues are never
-- shared by two calls.
local ARGV = {}
local C = {}
local function begin(args)
  ARGV = args
  C.retention_ms = tonumber(args[1])
  C.max_events = tonumber(args[2])
  C.stream_max = tonumber(args[3])
  C.max_total_bytes = tonumber(args[4])
  C.max_items_per_key = tonumber(args[5])
  C.max_bytes_per_key = tonumber(args[6])
  C.max_aliases_per_key = tonumber(args[7])
  C.intent_lifetime_ms = tonumber(args[8])
  C.intent_max_hold_ms = tonumber(args[9])
  C.max_size = tonumber(args[10])
end
local function arg(i) return ARGV[10 + i] end

local SEQ = 'effex:seq'
local STREAM = 'effex:events'
local DUE = 'effex:due'
local STATS = 'effex:stats'

local function item_key(id) return 'effex:{item:' .. id .. '}' end
local function log_key(id) return 'effex:{item:' .. id .. '}:log' end
local function key_key(key) return 'effex:{key:' .. key .. '}' end
local function alias_key(name) return 'effex:{alias:' .. name .. '}' end

-- Redis's own clock in µs: one clock for every node (below 2^53, so exact
-- in a Lua number).
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- Redis's own clock in ms, the unit of every deadline.
local function now_ms() return math.floor(now_us() / 1000) end

local function err(kind, detail) return {'err', kind, tostring(detail or '')} end

local function latest_seq() return tonumber(redis.call('GET', SEQ) or '0') end

-- The deadline of a valid (known, unexpired) access key, or nil.
local function key_deadline(key, now)
  local d = tonumber(redis.call('HGET', key_key(key), 'deadline') or '')
  if d and d > now then return d end
  return nil
end

-- The item an id or alias names (arg id, arg alias: exactly one is not
-- empty), or nil and an error.
local function resolve(id, alias, now)
  if id ~= '' then return id end
  local a = redis.call('HMGET', alias_key(alias), 'id', 'owner_deadline')
  if a[1] and tonumber(a[2]) > now then return a[1] end
  return nil, err('no_alias', alias)
end

local ITEM_FIELDS = {'owner', 'readers', 'updaters', 'state', 'value', 'size', 'modified',
  'deadline', 'intent_id', 'intent_holder', 'intent_since', 'intent_expires', 'log'}

-- What the sweep needs to expire an item (`gc_at`: only tombstones made by
-- effex versions before tombstones got a Redis TTL have it).
local EXPIRY_FIELDS = {'owner', 'state', 'size', 'deadline', 'gc_at', 'log'}

-- The item's hash as a table (`fields`: which ones, ITEM_FIELDS unless
-- given), or nil when there is none.
local function load_item(id, fields)
  fields = fields or ITEM_FIELDS
  local v = redis.call('HMGET', item_key(id), unpack(fields))
  if not v[1] then return nil end
  local h = {}
  for i, f in ipairs(fields) do h[f] = v[i] end
  h.size = tonumber(h.size or '0')
  -- The deadline as stored, to write it again without formatting the number
  -- (Lua formats each number it turns into text with sprintf).
  h.deadline_text = h.deadline or '0'
  h.deadline = tonumber(h.deadline_text)
  h.intent_since = tonumber(h.intent_since or '')
  h.intent_expires = tonumber(h.intent_expires or '')
  return h
end

local function is_live(h, now) return h and h.state == 'live' and h.deadline > now end

local function listed(list, key)
  return string.find(' ' .. (list or '') .. ' ', ' ' .. key .. ' ', 1, true) ~= nil
end

-- What `key` may do with the item: 3 owner, 2 update, 1 read, 0 nothing.
local function access(h, key)
  local kind = string.sub(key, 1, 2)
  if kind == 'wk' and key == h.owner then return 3 end
  if kind == 'uk' and listed(h.updaters, key) then return 2 end
  if kind == 'rk' and listed(h.readers, key) then return 1 end
  return 0
end

local function key_count(key, field)
  return tonumber(redis.call('HGET', key_key(key), field) or '0')
end

-- The value bytes of every live item (the 507 quota's count).
local function stored_bytes() return tonumber(redis.call('HGET', STATS, 'bytes') or '0') end

-- 429/507 for `bytes` more value bytes when their owner holds `owner_bytes`
-- and the store `total` (`total`: nil to read it), or nil.
local function bytes_refused(bytes, owner_bytes, total)
  if owner_bytes + bytes > C.max_bytes_per_key then return err('quota_bytes', bytes) end
  if (total or stored_bytes()) + bytes > C.max_total_bytes then return err('full', bytes) end
  return nil
end

-- Checks that `key` (valid until `kd`) may point alias `name`: 409 when
-- another live key holds it, 429 when the key holds its most aliases. Returns
-- whether the name is new to the key, or nil and the error.
local function claim_alias(name, key, now)
  local a = redis.call('HMGET', alias_key(name), 'owner', 'owner_deadline')
  if a[1] == key then return false end
  if a[1] and tonumber(a[2]) > now then return nil, err('conflict', name) end
  if key_count(key, 'aliases') >= C.max_aliases_per_key then return nil, err('quota_aliases') end
  return true
end

-- Points alias `name` at item `id` and appends the re-point to the event
-- stream in the same step. It takes no seq: its entry id is `<latest seq>-<n>`
-- (n >= 1, Redis picks the next), so it sorts after every event up to the
-- latest seq and before the next one.
local function point_alias(name, id, key, kd, is_new)
  if is_new then redis.call('HINCRBY', key_key(key), 'aliases', 1) end
  redis.call('HSET', alias_key(name), 'owner', key, 'id', id, 'owner_deadline', kd)
  redis.call('ZADD', DUE, kd, 'a:' .. name)
  local since = redis.call('GET', SEQ) or '0'
  redis.call('XADD', STREAM, 'MAXLEN', '~', C.stream_max, since .. '-*',
    'alias', name, 'id', id, 'since', since)
end

-- The quota shares given back by the items one script retires, applied once
-- at its end (flush_retired): one HINCRBY per owner and counter, not per item.
local function new_retired() return {owners = {}, items = 0, bytes = 0} end

local function flush_retired(r)
  for owner, o in pairs(r.owners) do
    -- An expired item's owner key may be gone (its deadline is the item's
    -- latest), and HINCRBY then makes its hash again, without a deadline.
    -- A key that exists counts at least the items it gives back, so a count
    -- below zero means it was gone: drop it again (one call fewer per owner
    -- than asking EXISTS first, in the same atomic step).
    local kk = key_key(owner)
    if redis.call('HINCRBY', kk, 'items', -o.items) < 0 then
      redis.call('DEL', kk)
    elseif o.bytes ~= 0 then
      redis.call('HINCRBY', kk, 'bytes', -o.bytes)
    end
  end
  if r.items ~= 0 then redis.call('HINCRBY', STATS, 'items', -r.items) end
  if r.bytes ~= 0 then redis.call('HINCRBY', STATS, 'bytes', -r.bytes) end
end

-- Turns a live item into a tombstone that Redis drops at `ends` (now +
-- retention: a TTL, so no deadline entry and no second sweep; a sweep passes
-- the same `ends` for all its items, formatted once) and counts its quota share
-- back in `r`. The tombstone keeps the item's last event, `final` (its
-- `seq:at:kind`: remove or expire, never followed by another), as the last
-- entry of the item's log (events.lua reads it after the log list): one
-- HSET instead of an RPUSH to the list and a TTL on it. The list exists only
-- once the item was updated (`log` is '' until then; nil for items written
-- by effex versions before that field), and gets the same TTL.
local function retire(id, h, ends, r, final)
  local o = r.owners[h.owner]
  if not o then o = {items = 0, bytes = 0}; r.owners[h.owner] = o end
  o.items, o.bytes = o.items + 1, o.bytes + h.size
  r.items, r.bytes = r.items + 1, r.bytes + h.size
  local ik = item_key(id)
  -- An empty value frees its bytes in the same call (a tombstone's value and
  -- intent are never read: every script checks is_live first).
  redis.call('HSET', ik, 'state', 'gone', 'size', '0', 'value', '', 'final', final)
  redis.call('PEXPIREAT', ik, ends)
  if h.log ~= '' then redis.call('PEXPIREAT', log_key(id), ends) end
  h.state = 'gone'
end

-- One log entry, `seq:at:kind` (parse_logged reads it back).
local function logged(seq, at, kind) return seq .. ':' .. at .. ':' .. kind end

local function parse_logged(entry)
  local seq, at, kind = string.match(entry, '^(%d+):(%d+):(%a+)$')
  return tonumber(seq), tonumber(at), kind
end

local function drop_logged(id, entry)
  local seq, _, kind = parse_logged(entry)
  local field = 'dropped_' .. kind
  local prev = tonumber(redis.call('HGET', item_key(id), field) or '0')
  if seq > prev then redis.call('HSET', item_key(id), field, seq) end
end

-- Appends event `seq` to the store-wide stream: one entry, id `<seq>-0`.
local function stream_event(seq, kind, id, at, value)
  if value then
    redis.call('XADD', STREAM, 'MAXLEN', '~', C.stream_max, seq .. '-0',
      'seq', seq, 'event', kind, 'id', id, 'at', at, 'value', value)
  else
    redis.call('XADD', STREAM, 'MAXLEN', '~', C.stream_max, seq .. '-0',
      'seq', seq, 'event', kind, 'id', id, 'at', at)
  end
end

-- Logs update `seq` (at `now`) in the item's log list, drops the entries
-- beyond the most kept and those older than the retention, and appends it to
-- the stream. Bumping the seq is the caller's, in the same script.
-- `first_at`: when the list's first entry was logged, as the item's `log`
-- field keeps it (nil: not known — no list yet, or an item from an effex
-- version before that field). Returns the new first entry's time, for that
-- field: while it is within the retention, nothing has aged out and the
-- list is not read at all.
local function log_update(id, seq, now, value, first_at)
  local lk = log_key(id)
  local len = redis.call('RPUSH', lk, logged(seq, now, 'update'))
  if len == 1 then first_at = now end
  while len > C.max_events do
    drop_logged(id, redis.call('LPOP', lk))
    len = len - 1
    first_at = nil
  end
  local cutoff = now - C.retention_ms
  if not first_at or first_at < cutoff then
    -- The entry just pushed stays (at least one event is kept, validated in
    -- Rust) and is within the retention, so this ends before the list does.
    while true do
      local _, at = parse_logged(redis.call('LINDEX', lk, 0))
      if at >= cutoff then first_at = at; break end
      drop_logged(id, redis.call('LPOP', lk))
    end
  end
  stream_event(seq, 'update', id, now, value)
  return first_at
end

-- Ends live item `id` (`h`: load_item) with event `kind` at `at`: a new seq,
-- the tombstone holding the event (retire), the quota given back, the stream
-- entry; one step, as the script is atomic. Returns the seq.
local function end_item(id, h, kind, at, now)
  local seq = redis.call('INCR', SEQ)
  local r = new_retired()
  retire(id, h, now + C.retention_ms, r, logged(seq, at, kind))
  flush_retired(r)
  stream_event(seq, kind, id, at)
  return seq
end

-- THE expiry claim, taken by the sweeper (sweep.lua, for a batch) and by
-- every script that finds a due item the sweeper has not reached yet (`h` is
-- load_item(id)): if the item is live and its deadline has passed, removes
-- it from the deadline set and, only if that removal happened, expires it.
-- Returns that event's seq, or nil (not due, or already claimed): whoever
-- comes first expires it, exactly once.
local function is_due(h, now) return h and h.state == 'live' and h.deadline <= now end

local function claim_expiry(id, h, now)
  if not is_due(h, now) then return nil end
  if redis.call('ZREM', DUE, 'i:' .. id) == 0 then return nil end
  return end_item(id, h, 'expire', h.deadline, now)
end
