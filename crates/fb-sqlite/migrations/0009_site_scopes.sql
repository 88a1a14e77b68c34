-- Site scopes of users and API keys (D3): 'all', or a JSON array of site names.
-- Users and keys that existed before scopes keep seeing every site.
-- SQLite adds a NOT NULL column only with a default, and a default would grant every site to
-- any row written without its sites. So the column has none: such a row holds NULL, which the
-- store reads as corrupt (the credential stops working) rather than as "every site".

ALTER TABLE users ADD COLUMN sites TEXT;
UPDATE users SET sites = 'all';

ALTER TABLE api_keys ADD COLUMN sites TEXT;
UPDATE api_keys SET sites = 'all';
