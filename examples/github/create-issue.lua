-- Opens a GitHub issue. A repository name that is not owner/name fails the action
-- before any request; GitHub's own refusals (404, 422) reach the caller as
-- script_http_error with GitHub's answer.
return {
  type = "action",
  description = "Opens an issue in a repository",
  version = "1.0.0",
  scopes = { "repo" },
  input = { repo = "string", title = "string", body = "string?", labels = "string[]?" },
  output = { id = "string", number = "integer", url = "string" },
  endpoint = "POST /issues",
  exec = function(ctx, input)
    if not input.repo:match("^[%w%.%-_]+/[%w%.%-_]+$") then
      ctx:action_error{ message = "repo must be owner/name", repo = input.repo }
    end
    local res = ctx:post{
      endpoint = "/repos/" .. input.repo .. "/issues",
      data = { title = input.title, body = input.body, labels = input.labels },
      retries = 2,
    }
    return { id = tostring(res.data.id), number = res.data.number, url = res.data.html_url }
  end,
}
