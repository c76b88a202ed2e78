-- The WebSocket client (Nango's frontend SDK) waiting for the result of an OAuth attempt;
-- the callback notifies it through PostgreSQL (NOTIFY junction_oauth), so the gateway that
-- holds the socket need not be the one that receives the callback.
ALTER TABLE oauth_attempts ADD COLUMN ws_client_id text;
