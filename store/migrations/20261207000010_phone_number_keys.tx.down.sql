DROP INDEX phone_numbers_number_key_idx;
--bun:split
ALTER TABLE phone_numbers DROP COLUMN number_key;
