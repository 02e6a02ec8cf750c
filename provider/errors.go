package provider

import "errors"

// ErrUnusable is a tenant's stored providers that cannot be built into a registry (a kind
// or a setting the model registry refuses). The API answers it 400 with model_not_found;
// a call's agent says it cannot think.
var ErrUnusable = errors.New("provider: the tenant's model providers are not usable")
