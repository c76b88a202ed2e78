-- HubSpot contacts, with the provider's cursor pagination (paging.next.after, records
-- under "results"). Properties HubSpot returns as null are simply absent.
return {
  type = "sync",
  description = "Fetches HubSpot contacts",
  version = "1.0.0",
  frequency = "every hour",
  sync_type = "full",
  track_deletes = true,
  scopes = { "crm.objects.contacts.read" },
  models = {
    HubspotContact = {
      id = "string",
      email = "string?",
      first_name = "string?",
      last_name = "string?",
      updated_at = "date",
    },
  },
  exec = function(ctx)
    for page in ctx:paginate{
      endpoint = "/crm/v3/objects/contacts",
      params = { properties = "email,firstname,lastname", archived = false },
      retries = 5,
      paginate = { limit = 100 },
    } do
      local contacts = {}
      for _, c in ipairs(page) do
        local p = c.properties or {}
        contacts[#contacts + 1] = {
          id = c.id,
          email = p.email,
          first_name = p.firstname,
          last_name = p.lastname,
          updated_at = c.updatedAt,
        }
      end
      ctx:batch_save(contacts, "HubspotContact")
    end
  end,
}
