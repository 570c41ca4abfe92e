DROP TABLE ack_imports;
