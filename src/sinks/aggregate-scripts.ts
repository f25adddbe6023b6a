/**
 * The Lua scripts of aggregate sinks (aggregate-sink.ts). Each is sent with EVAL inside the batch's
 * MULTI, its keys declared, so it is atomic with the rest of the transaction and with the sink's
 * position, and Redis Cluster routes it to the slot of its keys.
 *
 * Numbers are decimal strings added digit by digit (`add`): exact for any size and scale, as
 * core/decimal.ts computes them in TypeScript (the integration tests compare the two). The scale
 * of a sum is the larger of its terms' (0.10 + 0.2 = 0.30); zero has no sign.
 *
 * APPLY  KEYS: group key, registry   ARGV: mode, registry field, count delta, …
 *   mode 'h' (into: hash)            …, field₁, delta₁, field₂, delta₂, …
 *   mode 'c' (into: zset, count)     …, member
 *   mode 's' (into: zset, sum)       …, member, sum delta
 * The registry (`sluice:agg:<sink>:{tag}`, same slot) holds, per group, its row count ('h', 'c')
 * or `<count> <exact sum>` ('s'): the sorted set's score is a double, the registry keeps the exact
 * sum it was set from. A registry entry counts only while its group exists in Redis (a TRUNCATE
 * or a user may have removed it): otherwise the group starts from zero. When the count reaches 0
 * (or below: a group Redis never held), the group is removed, as GROUP BY has no empty groups.
 * Every value is read and checked before anything is written: a group whose field does not hold a
 * decimal number is left as it was and the command fails (a failed message).
 * `EVAL script 0 add a b` returns a + b and touches nothing (the tests check the arithmetic with it).
 */
export const AGGREGATE_APPLY_SCRIPT = `local function parts(v)
  if not string.match(v, '^%-?%d+%.?%d*$') then error('sluice aggregate: a value of group ' .. KEYS[1] .. ' is not a decimal number') end
  local neg = string.sub(v, 1, 1) == '-'
  if neg then v = string.sub(v, 2) end
  local d = string.find(v, '.', 1, true)
  if d then return neg, string.sub(v, 1, d - 1), string.sub(v, d + 1) end
  return neg, v, ''
end
local function add(a, b)
  local na, ia, fa = parts(a)
  local nb, ib, fb = parts(b)
  local s = math.max(#fa, #fb)
  local x = ia .. fa .. string.rep('0', s - #fa)
  local y = ib .. fb .. string.rep('0', s - #fb)
  local n = math.max(#x, #y)
  x = string.rep('0', n - #x) .. x
  y = string.rep('0', n - #y) .. y
  local neg, sub = na, na ~= nb
  if sub and x < y then x, y, neg = y, x, nb end
  local out, c = {}, 0
  for i = n, 1, -1 do
    local p, q = string.byte(x, i) - 48, string.byte(y, i) - 48
    local r
    if sub then
      r = p - q - c
      if r < 0 then r, c = r + 10, 1 else c = 0 end
    else
      r = p + q + c
      if r > 9 then r, c = r - 10, 1 else c = 0 end
    end
    out[i] = r
  end
  local t = table.concat(out)
  if c > 0 then t = '1' .. t end
  local ip = string.match(string.sub(t, 1, #t - s), '^0*(.-)$')
  if ip == '' then ip = '0' end
  if s > 0 then ip = ip .. '.' .. string.sub(t, #t - s + 1) end
  if neg and string.find(ip, '[1-9]') then ip = '-' .. ip end
  return ip
end
if ARGV[1] == 'add' then return add(ARGV[2], ARGV[3]) end
local k, r, m, f = KEYS[1], KEYS[2], ARGV[1], ARGV[2]
local e
if m == 'h' then e = redis.call('EXISTS', k) == 1 else e = redis.call('ZSCORE', k, ARGV[4]) end
local n, s = '0', '0'
if e then
  local v = redis.call('HGET', r, f)
  if v then
    local sp = string.find(v, ' ', 1, true)
    if sp then n, s = string.sub(v, 1, sp - 1), string.sub(v, sp + 1) else n = v end
  end
end
n = add(n, ARGV[3])
if n == '0' or string.sub(n, 1, 1) == '-' then
  if m == 'h' then redis.call('DEL', k) else redis.call('ZREM', k, ARGV[4]) end
  redis.call('HDEL', r, f)
  return 0
end
if m == 'h' then
  local vals = {}
  for i = 4, #ARGV, 2 do
    local c = e and redis.call('HGET', k, ARGV[i]) or '0'
    vals[#vals + 1] = ARGV[i]
    vals[#vals + 1] = add(c, ARGV[i + 1])
  end
  if #vals > 0 then redis.call('HSET', k, unpack(vals)) end
  redis.call('HSET', r, f, n)
elseif m == 'c' then
  redis.call('ZADD', k, n, ARGV[4])
  redis.call('HSET', r, f, n)
else
  s = add(s, ARGV[5])
  redis.call('ZADD', k, s, ARGV[4])
  redis.call('HSET', r, f, n .. ' ' .. s)
end
return 1`;

/**
 * SWEEP  KEYS: registry   ARGV: 'h' | 'z', field to keep…
 * At an aggregate backfill's place in the stream: every group of this registry that the GROUP BY
 * result does not hold is removed (the hash, or the member of its sorted set), with its entry.
 * The groups' keys are read from the registry, so they are not declared: they are in the
 * registry's slot by construction (see aggregateRegistryKeyOf).
 */
export const AGGREGATE_SWEEP_SCRIPT = `local keep = {}
for i = 2, #ARGV do keep[ARGV[i]] = true end
local gone = 0
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if not keep[f] then
    local c = string.find(f, ':', 1, true)
    local n = tonumber(string.sub(f, 1, c - 1))
    local key = string.sub(f, c + 1, c + n)
    if ARGV[1] == 'h' then redis.call('DEL', key) else redis.call('ZREM', key, string.sub(f, c + n + 1)) end
    redis.call('HDEL', KEYS[1], f)
    gone = gone + 1
  end
end
return gone`;
