DROP TABLE amplifier_applications;
--bun:split
DROP TABLE amplifier_configs;
