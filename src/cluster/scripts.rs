//! The Lua scripts the replicas run in Redis. Each is one atomic step: no
//! other replica's command runs between its reads and its writes, so a
//! counter is never claimed twice and a rule change is never half seen.
//!
//! Keys are given by the caller ([`super::Keys`]); numbers travel as
//! decimal strings (`tonumber` is exact below 2^53).

/// Counts a request whose `match` held: `matched` + 1, then `after` and
/// `times`; without a draw, also claims the firing.
/// KEYS: counters (hash), draws (sequence). ARGV: rule key, after, times
/// (-1: none), draw (`1`/`0`). Returns `{kind, n}`: 0 after (n: matched),
/// 1 times (n: fired), 2 draw (n: the draw's number), 3 fired.
pub(super) const COUNT: &str = r"
local m = redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':m', 1)
if m <= tonumber(ARGV[2]) then return {0, m} end
local times = tonumber(ARGV[3])
local f = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':f') or '0')
if times >= 0 and f >= times then return {1, f} end
if ARGV[4] == '1' then return {2, redis.call('INCR', KEYS[2])} end
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':f', 1)
return {3, 0}
";

/// Claims a firing once its draw held. KEYS: counters. ARGV: rule key,
/// times (-1: none). Returns 1 when claimed, 0 when `times` ran out.
pub(super) const CLAIM: &str = r"
local times = tonumber(ARGV[2])
local f = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':f') or '0')
if times >= 0 and f >= times then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1] .. ':f', 1)
return 1
";

/// The shared rules as one consistent read. KEYS: version, epoch, cleared,
/// removed, order, rules. Returns `{version, epoch, cleared, n, removed
/// id × n, rule entry…}` (entries newest first).
pub(super) const READ_RULES: &str = r"
local out = {redis.call('GET', KEYS[1]) or '0', redis.call('GET', KEYS[2]) or '0',
  redis.call('GET', KEYS[3]) or '0'}
local removed = redis.call('SMEMBERS', KEYS[4])
out[4] = tostring(#removed)
for i = 1, #removed do out[#out + 1] = removed[i] end
local ids = redis.call('LRANGE', KEYS[5], 0, -1)
for i = 1, #ids do out[#out + 1] = redis.call('HGET', KEYS[6], ids[i]) or '' end
return out
";

/// Adds run-time rules before all others, all or nothing. KEYS: ids (set),
/// fixture ids (set), removed, cleared, order (list), rules (hash), next id,
/// next key, version. ARGV: source, version token, then (id or '', rule
/// JSON) per rule. Returns `{'ok', id…}` or `{'dup', id}`.
pub(super) const ADD_RULES: &str = r#"
local cleared = redis.call('GET', KEYS[4]) == '1'
local function taken(id)
  if redis.call('SISMEMBER', KEYS[1], id) == 1 then return true end
  if cleared then return false end
  return redis.call('SISMEMBER', KEYS[2], id) == 1 and redis.call('SISMEMBER', KEYS[3], id) == 0
end
local n = (#ARGV - 2) / 2
local seen = {}
for i = 1, n do
  local id = ARGV[2 * i + 1]
  if id ~= '' then
    if seen[id] or taken(id) then return {'dup', id} end
    seen[id] = true
  end
end
local ids = {}
for i = 1, n do
  local id = ARGV[2 * i + 1]
  if id == '' then
    repeat id = 'rule-' .. redis.call('INCR', KEYS[7]) until not seen[id] and not taken(id)
    seen[id] = true
  end
  ids[i] = id
end
for i = n, 1, -1 do
  local key = 'a' .. redis.call('INCR', KEYS[8])
  local entry = '{"key":' .. cjson.encode(key) .. ',"id":' .. cjson.encode(ids[i]) ..
    ',"source":' .. cjson.encode(ARGV[1]) .. ',"rule":' .. ARGV[2 * i + 2] .. '}'
  redis.call('SADD', KEYS[1], ids[i])
  redis.call('HSET', KEYS[6], ids[i], entry)
  redis.call('LPUSH', KEYS[5], ids[i])
end
redis.call('SET', KEYS[9], ARGV[2])
local out = {'ok'}
for i = 1, n do out[i + 1] = ids[i] end
return out
"#;

/// Removes a rule by id: a run-time rule, or (ARGV[2] = '1': the caller
/// holds a fixture rule of that id) a fixture rule, on every replica.
/// KEYS: ids, order, rules, removed, version. ARGV: id, fixture, version
/// token. Returns 1 if removed.
pub(super) const REMOVE_RULE: &str = r"
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('LREM', KEYS[2], 1, ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('SET', KEYS[5], ARGV[3])
  return 1
end
if ARGV[2] == '1' and redis.call('SADD', KEYS[4], ARGV[1]) == 1 then
  redis.call('SET', KEYS[5], ARGV[3])
  return 1
end
return 0
";

/// Removes every rule, fixture rules included (until a reset). KEYS: ids,
/// order, rules, removed, cleared, version. ARGV: version token. Returns
/// the run-time rules removed.
pub(super) const CLEAR_RULES: &str = r"
local n = redis.call('SCARD', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('SET', KEYS[5], '1')
redis.call('SET', KEYS[6], ARGV[1])
return n
";

/// Back to the start: run-time rules, removals, counters, draws, the
/// journal and the files' changes gone, a new epoch (fresh fixture
/// counters). KEYS: ids, order, rules, removed, cleared, counters, draws,
/// journal, journal bytes, files, epoch, version. ARGV: epoch token,
/// version token.
pub(super) const RESET: &str = r"
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9],
  KEYS[10])
redis.call('SET', KEYS[11], ARGV[1])
redis.call('SET', KEYS[12], ARGV[2])
return 1
";

/// Journals a request, dropping the oldest while over either bound (the
/// newest always stays). KEYS: journal (list, newest first), journal seq,
/// journal bytes. ARGV: record JSON, most entries, most bytes. Returns the
/// record's seq; entries are `<seq> <json>`.
pub(super) const JOURNAL_PUSH: &str = r"
local seq = redis.call('INCR', KEYS[2])
local entry = seq .. ' ' .. ARGV[1]
local len = redis.call('LPUSH', KEYS[1], entry)
local bytes = redis.call('INCRBY', KEYS[3], #entry)
local cap = tonumber(ARGV[2])
local max = tonumber(ARGV[3])
while len > 1 and (len > cap or bytes > max) do
  local old = redis.call('RPOP', KEYS[1])
  bytes = redis.call('DECRBY', KEYS[3], #old)
  len = len - 1
end
return seq
";

/// The journal, newest first, and the last seq given. KEYS: journal,
/// journal seq.
pub(super) const JOURNAL_READ: &str = r"
local out = {redis.call('GET', KEYS[2]) or '0'}
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for i = 1, #entries do out[i + 1] = entries[i] end
return out
";
