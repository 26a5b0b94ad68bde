-- resolve: arg(1) an alias. Returns {'ok', id} or no_alias.
local id, e = resolve('', arg(1), now_ms())
if not id then return e end
return {'ok', id}
