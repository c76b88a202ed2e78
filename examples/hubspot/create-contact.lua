-- Creates a HubSpot contact; a 409 (the email exists) becomes an action error that
-- carries HubSpot's message, anything else goes to the caller as an HTTP error.
return {
  type = "action",
  description = "Creates a HubSpot contact",
  version = "1.0.0",
  scopes = { "crm.objects.contacts.write" },
  input = { email = "string", first_name = "string?", last_name = "string?" },
  output = { id = "string", created_at = "date" },
  exec = function(ctx, input)
    local res = ctx:post{
      endpoint = "/crm/v3/objects/contacts",
      data = { properties = { email = input.email, firstname = input.first_name,
                              lastname = input.last_name } },
      raise = false,
    }
    if res.status == 409 then
      ctx:action_error{ message = "a contact with this email exists", hubspot = res.data }
    elseif res.status >= 400 then
      error("HubSpot answered " .. res.status .. ": " .. json.encode(res.data))
    end
    return { id = res.data.id, created_at = res.data.createdAt }
  end,
}
