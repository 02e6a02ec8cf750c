-- A phone number is unique on the node as it is dialled, not only as it is written: an
-- inbound call finds its tenant by the number alone, so "+14155550100", "14155550100" and
-- "1.415.555.0100", or "Support" and "support", must not belong to two tenants. number_key
-- is the number as store.NumberKey normalises it: the digits of a telephone number without
-- its "+" and separators, or else the number in lower case.
ALTER TABLE phone_numbers ADD COLUMN number_key TEXT;
--bun:split
-- First the digits a telephone number would have...
UPDATE phone_numbers SET number_key = replace(replace(replace(replace(replace(
    CASE WHEN substr(number, 1, 1) = '+' THEN substr(number, 2) ELSE number END,
    ' ', ''), '-', ''), '.', ''), '(', ''), ')', '');
--bun:split
-- ...and the number in lower case where they are not one: 2 to 15 digits, not starting
-- with 0 (the replaces leave nothing of a string of digits alone; portable SQL, where
-- SQLite has no regular expressions).
UPDATE phone_numbers SET number_key = lower(number)
WHERE length(number_key) < 2 OR length(number_key) > 15 OR substr(number_key, 1, 1) = '0'
   OR replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(
        number_key, '0', ''), '1', ''), '2', ''), '3', ''), '4', ''), '5', ''), '6', ''), '7', ''), '8', ''), '9', '') <> '';
--bun:split
-- Numbers that already collide keep routing to the oldest of them; the others route
-- nowhere (a NULL key). They are not hidden: the API shows them "routable": false with the
-- reason, each start of the node logs them, and their tenants may still edit them; one
-- routes again once its number is changed to a free one (store.PhoneNumber.beforeUpdate).
UPDATE phone_numbers SET number_key = NULL
WHERE EXISTS (
    SELECT 1 FROM phone_numbers older
    WHERE older.number_key = phone_numbers.number_key
      AND (older.created_at < phone_numbers.created_at
           OR (older.created_at = phone_numbers.created_at AND older.id < phone_numbers.id))
);
--bun:split
CREATE UNIQUE INDEX phone_numbers_number_key_idx ON phone_numbers (number_key);
