-- Slack channels the token can see, with Slack's cursor (response_metadata.next_cursor);
-- the records are under "channels", which this sync sets on top of the provider's
-- pagination defaults.
return {
  type = "sync",
  description = "Fetches the Slack channels of the workspace",
  version = "1.0.0",
  frequency = "every day",
  sync_type = "full",
  track_deletes = true,
  scopes = { "channels:read" },
  models = {
    SlackChannel = { id = "string", name = "string", is_private = "boolean", members = "integer?" },
  },
  exec = function(ctx)
    for page in ctx:paginate{
      endpoint = "/conversations.list",
      params = { types = "public_channel,private_channel", exclude_archived = true },
      paginate = { response_path = "channels", limit = 200 },
      retries = 3,
    } do
      local channels = {}
      for _, ch in ipairs(page) do
        channels[#channels + 1] = {
          id = ch.id, name = ch.name, is_private = ch.is_private == true, members = ch.num_members,
        }
      end
      ctx:batch_save(channels, "SlackChannel")
    end
  end,
}
