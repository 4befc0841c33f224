-- wrk script for bench.intake: POSTs pre-signed Twilio inbound-SMS forms, one per request.
--
--   wrk -t T -c C -d Ds --timeout 15s -s bench/twilio_sms.lua URL -- REQUESTS_FILE T
--
-- REQUESTS_FILE has one request per line: "<X-Twilio-Signature>\t<urlencoded body>", written
-- by bench.intake (wrk's Lua cannot compute HMAC-SHA1, so Python signs them beforehand). Every
-- line carries its own MessageSid and From, so every request stores a new case. Thread k of T
-- takes lines k, k+T, k+2T...; if a thread runs out it starts again from its first line and
-- counts a wrap (bench.intake then flags the run: repeated lines are duplicates, not new cases).
-- done() prints one line "BENCH {json}" for bench.intake to read.

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
   local host = wrk.host .. ":" .. wrk.port
   local head = "POST " .. wrk.path .. " HTTP/1.1\r\n" ..
      "Host: " .. host .. "\r\n" ..
      "User-Agent: TwilioProxy/1.1\r\n" ..
      "Accept: */*\r\n" ..
      "Content-Type: application/x-www-form-urlencoded\r\n"
   reqs = {}
   local i = 0
   for line in io.lines(path) do
      i = i + 1
      if (i - tid) % nthreads == 0 then
         local tab = line:find("\t", 1, true)
         local body = line:sub(tab + 1)
         reqs[#reqs + 1] = head ..
            "X-Twilio-Signature: " .. line:sub(1, tab - 1) .. "\r\n" ..
            "Content-Length: " .. #body .. "\r\n\r\n" .. body
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
