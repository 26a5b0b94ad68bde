-- key_check: arg(1) an access key. Returns {'ok', deadline} or unknown_key.
local kd = key_deadline(arg(1), now_ms())
if not kd then return err('unknown_key') end
return {'ok', kd}
