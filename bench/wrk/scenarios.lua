-- The benchmark's scenarios for wrk: `wrk ... -s bench/wrk/scenarios.lua URL -- CONFIG SCENARIO`.
--
-- CONFIG is a Lua file written by bench.run (`return {token = ..., first_id = ..., ...}`);
-- SCENARIO names one of the request makers below. Every connection sends its next request
-- as soon as the last one is answered, so `-c` is the number of concurrent clients. When
-- the run ends, done() prints one line "BENCH {json}" that bench/load.py reads: requests,
-- errors (wrk counts any status above 399 and every socket error), latency in microseconds.
-- With BENCH_COUNT_STATUSES set, every answer's status is counted too (the mixes use it: it
-- tells which answers failed, and counts a 3xx as well); it costs wrk some CPU per answer.

local config, scenario, make

local list_sorts = {"-price", "name", "-created_at"}
local list_statuses = {"in_stock", "low_stock", "out_of_stock"}
local all_sorts = {"name", "-name", "brand", "-brand", "stock", "-stock", "price", "-price",
   "created_at", "-created_at"}

local function pick(items)
   return items[math.random(#items)]
end

local function get(path)
   return wrk.format("GET", path)
end

local function random_paint()
   return math.random(config.first_id, config.last_id)
end

local function detail()
   return get("/api/v1/paints/" .. random_paint())
end

local function filtered_list()
   return get(string.format("/api/v1/paints?brand=%s&stock=%s&sort=%s&page=%d",
      pick(config.brands), pick(list_statuses), pick(list_sorts), math.random(3)))
end

local function search()
   return get("/api/v1/paints?q=" .. pick(config.search_terms))
end

-- Low stock by each paint's own reorder level, in any order, half the time for one brand.
local function low_stock()
   local path = "/api/v1/paints?stock=low_stock&sort=" .. pick(list_sorts)
   if math.random() < 0.5 then
      path = path .. "&brand=" .. pick(config.brands)
   end
   return get(path)
end

-- Page 1 of every paint in each order.
local function page_one()
   return get("/api/v1/paints?sort=" .. pick(all_sorts))
end

-- One filter at a time (a brand, a family, a type or a stock state), in any order.
local function one_filter()
   local filters = {"brand=" .. pick(config.brands), "color_family=" .. pick(config.families),
      "color_type=" .. pick(config.types), "stock=" .. pick(list_statuses)}
   return get("/api/v1/paints?" .. pick(filters) .. "&sort=" .. pick(all_sorts))
end

-- A word that a tenth of the paints match, and two words that fewer do.
local function broad_search()
   return get("/api/v1/paints?q=blue")
end

local function two_words()
   return get("/api/v1/paints?q=dark%20bone")
end

-- A numbered page far from the first.
local function deep_page()
   return get("/api/v1/paints?page=20000")
end

-- The admin dashboard, signed in (bench.run puts the session's cookie in the config).
local function dashboard()
   return wrk.format("GET", "/admin/", {["Cookie"] = config.cookie})
end

-- The shop-wide history's first page: everything, or one kind of change.
local function activity()
   local kind = pick({"", "", "import", "stock", "edit"})
   return get("/api/v1/activity" .. (kind == "" and "" or "?kind=" .. kind))
end

local function stats()
   return get("/api/v1/stats")
end

-- wrk.format takes the headers given instead of wrk.headers: the token is copied over.
local function adjust_stock()
   local headers = {["Content-Type"] = "application/json"}
   for name, value in pairs(wrk.headers) do headers[name] = value end
   return wrk.format("POST", "/api/v1/paints/" .. random_paint() .. "/stock",
      headers, '{"delta": 1, "reason": "bench"}')
end

-- A fragment of a paint's code, as read off a worn label: 4-6 digits, maybe a brand prefix.
local function code_search()
   local number = string.format("%06d", random_paint())
   local length = math.random(4, 6)
   local start = math.random(0, 6 - length)
   local fragment = number:sub(start + 1, start + length)
   if math.random() < 0.5 then
      fragment = pick(config.code_prefixes) .. number:sub(1, length)
   end
   return get("/api/v1/paints?q=" .. fragment)
end

-- The start of two words of a name, as an admin types them ("dar+bon").
local function name_search()
   local adjective, colour = pick(config.adjectives), pick(config.colour_names)
   return get("/api/v1/paints?q=" .. adjective:sub(1, math.random(3, 4)) .. "+"
      .. colour:sub(1, math.random(3, 4)))
end

-- Weighted choice: {{weight, maker}, ...}.
local function mix(weighted)
   local total = 0
   for _, entry in ipairs(weighted) do total = total + entry[1] end
   return function()
      local roll = math.random() * total
      for _, entry in ipairs(weighted) do
         roll = roll - entry[1]
         if roll < 0 then return entry[2]() end
      end
      return weighted[#weighted][2]()
   end
end

local makers = {
   hello = function() return get("/") end,
   detail = detail,
   hot_detail = function() return get("/api/v1/paints/" .. pick(config.hot_ids)) end,
   list = filtered_list,
   search = search,
   code_search = code_search,
   name_search = name_search,
   stats = stats,
   low_stock = low_stock,
   page_one = page_one,
   one_filter = one_filter,
   broad_search = broad_search,
   two_words = two_words,
   deep_page = deep_page,
   dashboard = dashboard,
   activity = activity,
   mix = mix({{60, detail}, {10, filtered_list}, {10, search}, {10, stats}, {10, adjust_stock}}),
   mix_detail = mix({{90, detail}, {10, adjust_stock}}),
}

local threads = {}

function setup(thread)
   threads[#threads + 1] = thread
   thread:set("thread_number", #threads)
end

if os.getenv("BENCH_COUNT_STATUSES") then
   statuses = {}

   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

-- Each thread's counts of answers by status, added up, as JSON ("" when not counted).
local function status_counts()
   if not os.getenv("BENCH_COUNT_STATUSES") then
      return ""
   end
   local total = {}
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses") or {}) do
         total[status] = (total[status] or 0) + count
      end
   end
   local parts = {}
   for status, count in pairs(total) do
      parts[#parts + 1] = string.format('"%d": %d', status, count)
   end
   return ', "statuses": {' .. table.concat(parts, ", ") .. "}"
end

function init(args)
   config = dofile(args[1])
   scenario = args[2]
   make = makers[scenario]
   if make == nil then
      error("unknown scenario " .. tostring(scenario))
   end
   math.randomseed(os.time() * 100 + (thread_number or 0))
   if scenario ~= "hello" then
      wrk.headers["Authorization"] = "Bearer " .. config.token
   end
end

function request()
   return make()
end

function done(summary, latency, requests)
   local errors = summary.errors
   local percentiles = {}
   for _, p in ipairs({50, 90, 95, 99}) do
      percentiles[#percentiles + 1] = string.format('"p%d_us": %d', p, latency:percentile(p))
   end
   io.write(string.format(
      'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d,'
      .. ' "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d,'
      .. ' "mean_us": %.1f, "max_us": %d, %s%s}\n',
      summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
      errors.write, errors.status, errors.timeout, latency.mean, latency.max,
      table.concat(percentiles, ", "), status_counts()))
end
