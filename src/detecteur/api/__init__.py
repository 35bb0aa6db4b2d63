"""HTTP API: routes, schemas, errors, limits and metrics. No model logic lives here."""
