-- wrk script for bench/rest_wrk.py: POST /api/v1/runs (or the bare POST echo, same body) with a new
-- session per request (runs in one session are serial, and one session's context would grow), mock
-- provider. The path comes from the URL wrk is given; the session id is the nonce given after `--`, the
-- thread's number and a counter, so no two requests of any wrk run share one.
--   wrk -s bench/runs.lua http://127.0.0.1:8787/api/v1/runs -- NONCE
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local counter = 0
local nonce = "x"

function init(args)
  nonce = args[1] or "x"
end

function request()
  counter = counter + 1
  local body = string.format('{"sessionId":"wrk-%s-%d-%d","input":"hello","provider":"mock"}', nonce, tid, counter)
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json"}, body)
end
