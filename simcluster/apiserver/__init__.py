"""The simulated Kubernetes API server: storage, REST verbs, discovery and OpenAPI, RBAC, audit,
faults, and its own controllers (DaemonSet, Job, garbage collector, scheduler)."""
