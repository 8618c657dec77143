-- Paces each wrk connection: it waits WRK_DELAY_MS after every response,
-- so N connections offer at most N * 1000 / WRK_DELAY_MS requests per second.
local delay_ms = tonumber(os.getenv("WRK_DELAY_MS") or "2")
function delay()
  return delay_ms
end
