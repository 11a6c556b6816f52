"""image-awaiter: make sure container images are on every Kubernetes node before users need them."""

__version__ = "0.1.0"
