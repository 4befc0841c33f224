-- wrk script for bench.ussd: POSTs prepared Africa's Talking USSD forms, one per request.
--
--   wrk -t T -c C -d Ds --timeout 15s -s bench/ussd.lua URL -- REQUESTS_FILE T
--
-- REQUESTS_FILE has one urlencoded form per line, written by bench.ussd; every line carries its
-- own sessionId, whose session bench.ussd left at the main menu in Redis beforehand. Thread k
-- of T takes lines k, k+T, k+2T...; a thread that runs out starts again from its first line and
-- counts a wrap (repeats are redeliveries: answered from the cache, not a menu step).
-- done() prints one line "BENCH {json}" for bench.ussd to read (same format as twilio_sms.lua).

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

function init(args)
   local path = args[1]
   local nthreads = tonumber(args[2])
   local head = "POST " .. wrk.path .. " HTTP/1.1\r\n" ..
      "Host: " .. wrk.host .. ":" .. wrk.port .. "\r\n" ..
      "Accept: */*\r\n" ..
      "Content-Type: application/x-www-form-urlencoded\r\n"
   reqs = {}
   local i = 0
   for line in io.lines(path) do
      i = i + 1
      if (i - tid) % nthreads == 0 then
         reqs[#reqs + 1] = head .. "Content-Length: " .. #line .. "\r\n\r\n" .. line
      end
   end
   n = #reqs
   pos = 0
   sent = 0
   wrapped = 0
end

function request()
   pos = pos + 1
   if pos > n then
      pos = 1
      wrapped = wrapped + 1
   end
   sent = sent + 1
   return reqs[pos]
end

function done(summary, latency, requests)
   local total_sent, total_wrapped = 0, 0
   for _, t in ipairs(threads) do
      total_sent = total_sent + t:get("sent")
      total_wrapped = total_wrapped + t:get("wrapped")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "status_errors": %d, "connect_errors": %d, ' ..
      '"read_errors": %d, "write_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, ' ..
      '"p99_us": %d, "p999_us": %d, "max_us": %d, "mean_us": %.1f, "sent": %d, "wrapped": %d}\n',
      summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean, total_sent, total_wrapped))
end
