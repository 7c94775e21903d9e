"""Sessions: one ingress session (ingest → media → publish, its state machine and watchdogs), the source slot a
session's publishers take turns in, and the manager that admits push sessions and starts pull sessions."""
