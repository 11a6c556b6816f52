"""The simulated nodes: kubelets, the container runtime and the image registry."""
