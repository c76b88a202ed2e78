-- Posts a message with chat.postMessage. Slack answers 200 with ok = false on
-- failure, so the script turns that into an action error with Slack's error code.
return {
  type = "action",
  description = "Sends a message to a Slack channel",
  version = "1.0.0",
  scopes = { "chat:write" },
  input = { channel = "string", text = "string", thread_ts = "string?" },
  output = { ts = "string", channel = "string" },
  endpoint = { method = "POST", path = "/messages" },
  exec = function(ctx, input)
    local res = ctx:post{
      endpoint = "/chat.postMessage",
      data = { channel = input.channel, text = input.text, thread_ts = input.thread_ts },
      retries = 3,
    }
    if not res.data.ok then
      ctx:action_error{ message = "Slack refused the message", slack_error = res.data.error }
    end
    return { ts = res.data.ts, channel = res.data.channel }
  end,
}
