"""Control plane: ingress records, validation, the Ingress API, auth, state and webhooks."""
