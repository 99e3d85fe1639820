-- wrk script for bench/tracking_load.py: cycles through request paths read from a file (one per
-- line), counts the requests each thread sent and the responses by status, and prints one JSON
-- line at the end. Usage: wrk ... -s tracking_wrk.lua URL -- PATHS_FILE

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  index = math.random(#paths)
  sent = 0
  statuses = {}
end

function request()
  index = index % #paths + 1
  sent = sent + 1
  return wrk.format("GET", paths[index], {["User-Agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"})
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total_sent = 0
  local merged = {}
  for _, thread in ipairs(threads) do
    total_sent = total_sent + thread:get("sent")
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  -- wrk calls request() once on the first thread to verify the script's request before any
  -- connection opens (script_verify_request); that call sends nothing.
  total_sent = total_sent - 1
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%d": %d', status, count)
  end
  local errors = summary.errors
  io.write(string.format(
    '{"sent": %d, "answered": %d, "seconds": %.3f, "p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f, ' ..
    '"errors": %d, "timeouts": %d, "statuses": {%s}}\n',
    total_sent, summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    errors.connect + errors.read + errors.write + errors.timeout, errors.timeout, table.concat(parts, ", ")))
end
