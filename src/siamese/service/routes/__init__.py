"""The API's routes, one module per resource, each an `APIRouter` the app factory includes:
recognition (identify, verify, embed), identities (and their examples), status (the model,
health, metrics), and the page. Routes import only the service's own modules (dependencies,
runtime, schemas, errors) and the recognition layer's decisions; never each other."""
