"""The API's routes, one module per resource, each an `APIRouter` the app factory includes:
recognition (identify, verify, embed), identities (and their examples), keys, and status's
`/model` are one gallery's routes, included under `/v1` (the default gallery) and under
`/v1/galleries/{gallery}`; galleries, health, metrics and the page are the service's. Routes
import only the service's own modules (dependencies, runtime, schemas, errors, keys) and the
recognition layer's decisions; never each other."""
