-- GitHub issues of the repositories listed in the connection's metadata
-- ({ repos = { "owner/name", ... } }), incrementally: after the first run only issues
-- updated since the last successful run are fetched. Pagination follows GitHub's Link
-- header (the provider's default); pull requests are skipped.
return {
  type = "sync",
  description = "Fetches the issues of the repositories in the connection metadata",
  version = "1.0.0",
  frequency = "every 30 minutes",
  auto_start = false,
  scopes = { "repo" },
  metadata = { repos = "string[]" },
  models = {
    GithubIssue = {
      id = "string",
      number = "integer",
      repo = "string",
      title = "string",
      state = "'open'|'closed'",
      author = "string?",
      labels = "string[]",
      updated_at = "date",
    },
  },
  exec = function(ctx)
    local repos = ctx:get_metadata().repos or {}
    for _, repo in ipairs(repos) do
      local params = { state = "all", sort = "updated", direction = "asc" }
      if ctx.last_sync_date then params.since = ctx.last_sync_date end
      for page in ctx:paginate{
        endpoint = "/repos/" .. repo .. "/issues",
        params = params,
        retries = 5,
        paginate = { limit = 100 },
      } do
        local issues = {}
        for _, it in ipairs(page) do
          if not it.pull_request then
            local labels = {}
            for _, label in ipairs(it.labels or {}) do labels[#labels + 1] = label.name end
            issues[#issues + 1] = {
              id = tostring(it.id),
              number = it.number,
              repo = repo,
              title = it.title,
              state = it.state,
              author = it.user and it.user.login,
              labels = labels,
              updated_at = it.updated_at,
            }
          end
        end
        ctx:batch_save(issues, "GithubIssue")
      end
    end
  end,
}
