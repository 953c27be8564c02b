-- wrk script for benches/gateway_overhead.py: POST one chat request over and over, check every answer.
--
--   wrk -t1 -c16 -d5s --latency -s chat.lua http://127.0.0.1:PORT/v1/chat/completions -- MODE BODY_FILE KEY
--
-- MODE is "json" (a chat completion is expected) or "sse" (the 23-event stream, ending in [DONE]).
-- A response counts as bad unless its status is 200 and its body is the expected one. done()
-- prints one line, "WRK_RESULT {json}", with the counts and latency percentiles in microseconds.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   mode = args[1] or "json"
   local file = assert(io.open(args[2], "rb"))
   local body = file:read("*a"):gsub("%s+$", "")
   file:close()
   wrk.method = "POST"
   wrk.body = body
   wrk.headers["Content-Type"] = "application/json"
   if args[3] and args[3] ~= "" then
      wrk.headers["Authorization"] = "Bearer " .. args[3]
   end
   good = 0
   bad = 0
   bad_status = 0
   last_bad = ""
end

local function valid(body)
   if mode == "sse" then
      local _, events = body:gsub("\n\n", "")
      return events == 23 and body:sub(-14) == "data: [DONE]\n\n"
   end
   return body:find('"object":"chat.completion"', 1, true) ~= nil and body:find('"usage"', 1, true) ~= nil
end

function response(status, headers, body)
   if status == 200 and valid(body) then
      good = good + 1
   else
      bad = bad + 1
      if status ~= 200 then
         bad_status = bad_status + 1
      end
      last_bad = tostring(status) .. " " .. body:sub(1, 200)
   end
end

local function quote(s)
   return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

function done(summary, latency, requests)
   local g, b, bs, sample = 0, 0, 0, ""
   for _, thread in ipairs(threads) do
      g = g + thread:get("good")
      b = b + thread:get("bad")
      bs = bs + thread:get("bad_status")
      local lb = thread:get("last_bad")
      if lb ~= "" then sample = lb end
   end
   local e = summary.errors
   local parts = {
      string.format('"requests":%d', summary.requests),
      string.format('"duration_us":%d', summary.duration),
      string.format('"bytes":%d', summary.bytes),
      string.format('"good":%d,"bad":%d,"bad_status":%d', g, b, bs),
      string.format('"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}',
                    e.connect, e.read, e.write, e.timeout, e.status),
      string.format('"latency_us":{"mean":%.1f,"stdev":%.1f,"min":%d,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}',
                    latency.mean, latency.stdev, latency.min, latency.max, latency:percentile(50),
                    latency:percentile(90), latency:percentile(99), latency:percentile(99.9)),
      '"bad_sample":' .. quote(sample),
   }
   io.write("WRK_RESULT {" .. table.concat(parts, ",") .. "}\n")
end
