"""What a run creates and writes in the cluster: puller DaemonSets and Events."""
