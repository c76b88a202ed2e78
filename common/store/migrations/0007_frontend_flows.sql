-- Browser origins allowed to call the end-user routes (the ones a connect session
-- token authorises) from a web page: comma-separated origins ("https://app.example.com"),
-- or empty for any origin. Routes that take the secret key never answer cross-origin.
ALTER TABLE environments ADD COLUMN cors_allowed_origins text NOT NULL DEFAULT '';

-- The browser that started an OAuth attempt: /oauth/connect sets a random nonce in a
-- cookie and keeps only its SHA-256 here; /oauth/callback accepts the attempt only from
-- a browser that presents the nonce (account-linking CSRF). NULL for attempts started
-- before this column existed, which can therefore no longer complete.
ALTER TABLE oauth_attempts ADD COLUMN browser_nonce_hash text;
