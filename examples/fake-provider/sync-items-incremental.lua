-- An incremental sync with a checkpoint, and a webhook handler that applies single
-- changes between runs. Pages come from offset pagination (GET /api/items/offset).
return {
  type = "sync",
  description = "Fetches the items added since the last checkpoint; webhooks update or delete one",
  version = "1.1.0",
  frequency = "1h",
  models = {
    Item = { id = "string", name = "string", updated_at = "date", seq = "integer" },
  },
  checkpoint = { last_seq = "integer" },
  webhook_subscriptions = { "item.updated", "item.deleted" },
  exec = function(ctx)
    local last = (ctx:get_checkpoint() or {}).last_seq or 0
    for page in ctx:paginate{
      endpoint = "/api/items/offset",
      paginate = {
        type = "offset",
        offset_name_in_request = "offset",
        response_path = "items",
        limit_name_in_request = "limit",
        limit = 100,
      },
    } do
      local fresh = {}
      for _, item in ipairs(page) do
        if item.seq > last then fresh[#fresh + 1] = item end
      end
      if #fresh > 0 then
        ctx:batch_save(fresh, "Item")
        last = fresh[#fresh].seq
        ctx:save_checkpoint{ last_seq = last }
      end
    end
  end,
  on_webhook = function(ctx, payload)
    if payload.type == "item.deleted" then
      ctx:batch_delete({ { id = payload.id } }, "Item")
    elseif payload.type == "item.updated" then
      ctx:batch_update({ payload.item }, "Item")
    else
      ctx:log("ignored webhook " .. tostring(payload.type), "warn")
    end
  end,
}
