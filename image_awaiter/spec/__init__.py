"""What a run is asked to do: settings, workload manifests, pull groups and puller manifests,
read from options and files. No cluster access."""
