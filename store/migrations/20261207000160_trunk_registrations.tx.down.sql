DROP TABLE trunk_registrations;
