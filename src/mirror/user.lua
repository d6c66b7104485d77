-- Mirrors one user record: the user hash, both directions of the fallback and pro links, the
-- token lookups of the edge and the token sets pro proxies accept. It diffs against what Redis
-- holds, so it is correct whether the user is new, changed or written again (a replay).
-- ARGV[1]: key prefix; ARGV[2]: the payload (records.rs `UserPayload`) as JSON.
local p = ARGV[1]
local u = cjson.decode(ARGV[2])
local id = u.id
local ukey = p .. 'user:' .. id

local function as_set(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = true end
  return set
end

local function replace_set(key, list)
  redis.call('DEL', key)
  if #list > 0 then redis.call('SADD', key, unpack(list)) end
end

local function notify(proxy, kind, link)
  if u.publish then
    redis.call('PUBLISH', p .. 'proxy:' .. proxy .. ':events',
      '{"kind":"' .. kind .. '","user":' .. id .. ',"link":"' .. link .. '","seq":' .. u.seq .. '}')
  end
end

redis.call('DEL', ukey)
redis.call('HSET', ukey, unpack(u.hash))

-- Fallback links: user -> proxies and proxy -> users.
local old_proxies = redis.call('SMEMBERS', ukey .. ':proxies')
local had, has = as_set(old_proxies), as_set(u.proxies)
for _, name in ipairs(old_proxies) do
  if not has[name] then
    redis.call('SREM', p .. 'proxy:' .. name .. ':users', id)
    notify(name, 'user_revoked', 'fallback')
  end
end
for _, name in ipairs(u.proxies) do
  if not had[name] then
    redis.call('SADD', p .. 'proxy:' .. name .. ':users', id)
    notify(name, 'user_added', 'fallback')
  end
end
replace_set(ukey .. ':proxies', u.proxies)

-- Tokens: the edge's token -> user lookup, and the accept list of each pro proxy.
local old_tokens = redis.call('SMEMBERS', ukey .. ':tokens')
local old_pro = redis.call('SMEMBERS', ukey .. ':pro_proxies')
local had_pro, has_pro = as_set(old_pro), as_set(u.pro_proxies)
local tokens_changed = #old_tokens ~= #u.tokens
local had_token = as_set(old_tokens)
for _, t in ipairs(u.tokens) do
  if not had_token[t] then tokens_changed = true end
end
for _, t in ipairs(old_tokens) do redis.call('DEL', p .. 'token:' .. t) end
for _, name in ipairs(old_pro) do
  redis.call('SREM', p .. 'proxy:' .. name .. ':pro_users', id)
  if #old_tokens > 0 then redis.call('SREM', p .. 'proxy:' .. name .. ':tokens', unpack(old_tokens)) end
  if not has_pro[name] then notify(name, 'user_revoked', 'pro') end
end
for _, t in ipairs(u.tokens) do redis.call('SET', p .. 'token:' .. t, id) end
for _, name in ipairs(u.pro_proxies) do
  redis.call('SADD', p .. 'proxy:' .. name .. ':pro_users', id)
  redis.call('SADD', p .. 'proxy:' .. name .. ':tokens', unpack(u.tokens))
  if not had_pro[name] then
    notify(name, 'user_added', 'pro')
  elseif tokens_changed then
    notify(name, 'tokens_changed', 'pro')
  end
end
replace_set(ukey .. ':tokens', u.tokens)
replace_set(ukey .. ':pro_proxies', u.pro_proxies)
return 1
