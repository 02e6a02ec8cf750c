DROP TABLE session_messages;
--bun:split
DROP TABLE sessions;
