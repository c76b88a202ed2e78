-- An action: posts a note to the fake provider's echo endpoint and returns what the
-- provider saw. An empty text fails the action with a payload for the caller.
return {
  type = "action",
  description = "Posts a note and returns the provider's receipt",
  version = "1.0.0",
  input = { text = "string", tags = "string[]?" },
  output = { method = "string", bytes = "integer", sha256 = "string", tags = "string[]" },
  endpoint = { method = "POST", path = "/notes" },
  exec = function(ctx, input)
    if input.text == "" then
      ctx:action_error{ message = "text may not be empty", field = "text" }
    end
    local res = ctx:post{
      endpoint = "/api/echo",
      data = { body = input.text, tags = input.tags or json.array() },
      retries = 2,
    }
    return {
      method = res.data.method,
      bytes = res.data.body_length,
      sha256 = res.data.body_sha256,
      tags = input.tags or {},
    }
  end,
}
