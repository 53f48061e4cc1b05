-- wrk script for scripts/perf: posts prebuilt, correctly signed Senfenico
-- notifications, each once, in file order. wrk's Lua has no SHA-256, so the
-- bodies and their X-Webhook-Hash come from `senfenico-load --write-requests`
-- (one "<signature> <body>" line each), read from the file named by the
-- environment variable WRK_REQUESTS. Run with one thread (-t1): each thread
-- would otherwise walk the same list and post duplicates.
--
-- When the list runs out the script starts over, so the rest are resends;
-- done() reports how many requests went out and whether that happened.

local requests = {}
local next_index = 1
local sent = 0

function init(args)
  local path = os.getenv("WRK_REQUESTS")
  if path == nil or path == "" then
    error("WRK_REQUESTS must name a file written by senfenico-load --write-requests")
  end
  local path_on_server = wrk.path
  for line in io.lines(path) do
    local sig, body = line:match("^(%x+) (.+)$")
    if sig then
      requests[#requests + 1] = wrk.format("POST", path_on_server, {
        ["Content-Type"] = "application/json",
        ["X-Webhook-Hash"] = sig,
      }, body)
    end
  end
  if #requests == 0 then
    error("no requests in " .. path)
  end
end

function request()
  local r = requests[next_index]
  next_index = next_index + 1
  if next_index > #requests then
    next_index = 1
  end
  sent = sent + 1
  return r
end

function done(summary, latency, requests_)
  io.write(string.format("wrk-signed: %d requests, %d non-2xx or socket errors\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read +
      summary.errors.write + summary.errors.timeout))
end
