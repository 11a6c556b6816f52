"""The access layer: connection, requests, retries, API errors, resources, list and watch
caches and their codecs. The only package that imports the Kubernetes client and tenacity."""
