-- A full sync of the fake provider's items (GET /api/items, cursor pagination).
-- Every run saves every item; with track_deletes, items that stop appearing are
-- marked deleted after the run.
return {
  type = "sync",
  description = "Fetches every item of the fake provider",
  version = "1.0.0",
  frequency = "every 5 minutes",
  sync_type = "full",
  track_deletes = true,
  models = {
    Item = { id = "string", name = "string", updated_at = "date", seq = "integer" },
  },
  exec = function(ctx)
    local saved = 0
    for page in ctx:paginate{
      endpoint = "/api/items",
      retries = 3,
      paginate = {
        type = "cursor",
        cursor_path_in_response = "next_cursor",
        cursor_name_in_request = "cursor",
        response_path = "items",
        limit_name_in_request = "limit",
        limit = 50,
      },
    } do
      ctx:batch_save(page, "Item")
      saved = saved + #page
    end
    ctx:log("saved " .. saved .. " items")
  end,
}
