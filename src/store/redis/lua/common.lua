-- effex: helpers shared by every script (prepended to each one).
-- ARGV[1..10] is the store's config (see RedisStore::invoke); an operation's
-- own arguments follow, read with arg(i).
local C = {
  retention_ms = tonumber(ARGV[1]),
  max_events = tonumber(ARGV[2]),
  stream_max = tonumber(ARGV[3]),
  max_total_bytes = tonumber(ARGV[4]),
  max_items_per_key = tonumber(ARGV[5]),
  max_bytes_per_key = tonumber(ARGV[6]),
  max_aliases_per_key = tonumber(ARGV[7]),
  intent_lifetime_ms = tonumber(ARGV[8]),
  intent_max_hold_ms = tonumber(ARGV[9]),
  max_size = tonumber(ARGV[10]),
}
local function arg(i) return ARGV[10 + i] end

local SEQ = 'effex:seq'
local STREAM = 'effex:events'
local DUE = 'effex:due'
local STATS = 'effex:stats'

local function item_key(id) return 'effex:{item:' .. id .. '}' end
local function log_key(id) return 'effex:{item:' .. id .. '}:log' end
local function key_key(key) return 'effex:{key:' .. key .. '}' end
local function alias_key(name) return 'effex:{alias:' .. name .. '}' end

-- Redis's own clock: one clock for every node.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

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
  'deadline', 'intent_id', 'intent_holder', 'intent_since', 'intent_expires', 'gc_at'}

local function load_item(id)
  local v = redis.call('HMGET', item_key(id), unpack(ITEM_FIELDS))
  if not v[1] then return nil end
  local h = {}
  for i, f in ipairs(ITEM_FIELDS) do h[f] = v[i] end
  h.size = tonumber(h.size or '0')
  h.deadline = tonumber(h.deadline or '0')
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

-- Adds `n` to a writer key's counter, unless the key is gone.
local function key_add(key, field, n)
  local kk = key_key(key)
  if n ~= 0 and redis.call('EXISTS', kk) == 1 then redis.call('HINCRBY', kk, field, n) end
end

local function key_count(key, field)
  return tonumber(redis.call('HGET', key_key(key), field) or '0')
end

-- 429/507 for `bytes` more value bytes of `owner`'s items, or nil.
local function bytes_refused(owner, bytes)
  if key_count(owner, 'bytes') + bytes > C.max_bytes_per_key then return err('quota_bytes', bytes) end
  local total = tonumber(redis.call('HGET', STATS, 'bytes') or '0')
  if total + bytes > C.max_total_bytes then return err('full', bytes) end
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

-- Turns a live item into a tombstone kept until now + retention; gives its
-- quota share back.
local function retire(id, h, now)
  key_add(h.owner, 'items', -1)
  key_add(h.owner, 'bytes', -h.size)
  redis.call('HINCRBY', STATS, 'items', -1)
  redis.call('HINCRBY', STATS, 'bytes', -h.size)
  local gc_at = now + C.retention_ms
  redis.call('HSET', item_key(id), 'state', 'gone', 'gc_at', gc_at, 'size', 0)
  redis.call('HDEL', item_key(id), 'value', 'intent_id', 'intent_holder', 'intent_since', 'intent_expires')
  redis.call('ZADD', DUE, gc_at, 'i:' .. id)
end

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

-- Bumps the seq, logs the event in the item's log (with retention) and
-- appends it to the store-wide stream: one step, as the script is atomic.
local function emit(id, kind, at, now, value)
  local seq = redis.call('INCR', SEQ)
  local lk = log_key(id)
  redis.call('RPUSH', lk, seq .. ':' .. at .. ':' .. kind)
  while redis.call('LLEN', lk) > C.max_events do
    drop_logged(id, redis.call('LPOP', lk))
  end
  local cutoff = now - C.retention_ms
  while true do
    local first = redis.call('LINDEX', lk, 0)
    if not first then break end
    local _, first_at = parse_logged(first)
    if first_at >= cutoff then break end
    drop_logged(id, redis.call('LPOP', lk))
  end
  if value then
    redis.call('XADD', STREAM, 'MAXLEN', '~', C.stream_max, seq .. '-0',
      'seq', seq, 'event', kind, 'id', id, 'at', at, 'value', value)
  else
    redis.call('XADD', STREAM, 'MAXLEN', '~', C.stream_max, seq .. '-0',
      'seq', seq, 'event', kind, 'id', id, 'at', at)
  end
  return seq
end

-- THE expiry claim, taken by the sweeper and by every script that finds a
-- due item the sweeper has not reached yet (`h` is load_item(id)): if the
-- item is live and its deadline has passed, removes it from the deadline
-- set and, only if that removal happened, turns it into a tombstone and logs
-- and streams its `expire` event. Returns that event's seq, or nil (not due,
-- or already claimed): whoever comes first expires it, exactly once.
local function claim_expiry(id, h, now)
  if not (h and h.state == 'live' and h.deadline <= now) then return nil end
  if redis.call('ZREM', DUE, 'i:' .. id) == 0 then return nil end
  retire(id, h, now)
  h.state = 'gone'
  return emit(id, 'expire', h.deadline, now, nil)
end
