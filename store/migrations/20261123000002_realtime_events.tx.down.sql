DROP TABLE realtime_events;
