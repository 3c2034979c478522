-- A role per site: an account may hold a different role at one of its listed sites (a nurse at
-- one clinic who is the pharmacist at another). NULL: the account's own role (`users.role`).
-- An account of every site (`users.all_sites` = 1) holds its own role everywhere.
ALTER TABLE user_sites ADD COLUMN role TEXT;
