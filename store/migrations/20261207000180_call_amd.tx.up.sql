-- Answering-machine detection of outbound calls: what the client asked for (mode, message,
-- timeout) and who answered (result, confidence, decision time, beep). NULL for calls that
-- did not ask for it.
ALTER TABLE calls ADD COLUMN amd {{.JSON}};
