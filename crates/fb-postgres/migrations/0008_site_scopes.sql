-- Site scopes of users and API keys (D3): 'all', or a JSON array of site names.
-- Users and keys that existed before scopes keep seeing every site; the default only fills
-- them and is dropped at once, so that no row written later gets every site by omission.

ALTER TABLE users ADD COLUMN sites text NOT NULL DEFAULT 'all';
ALTER TABLE users ALTER COLUMN sites DROP DEFAULT;

ALTER TABLE api_keys ADD COLUMN sites text NOT NULL DEFAULT 'all';
ALTER TABLE api_keys ALTER COLUMN sites DROP DEFAULT;
