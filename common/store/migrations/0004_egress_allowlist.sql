-- Addresses an environment may reach although they are internal (loopback, private…):
-- comma-separated CIDRs, empty by default. Outbound requests to providers check the
-- address actually connected to against this list (common/egress.c).
ALTER TABLE environments ADD COLUMN egress_allowlist text NOT NULL DEFAULT '';
