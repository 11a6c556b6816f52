#!/bin/sh
# tests/e2e (written for a real cluster) against the project's own real control plane:
# `python -m simcluster serve --control-plane real` (etcd, kube-apiserver, controller-manager,
# scheduler, and simulated kubelets as its nodes), stopped when the tests end.
set -eu
PY=${PY:-.venv/bin/python}
DIR=build/e2e
VERSION=$($PY -c 'import image_awaiter; print(image_awaiter.__version__)')
HELPER=ghcr.io/image-awaiter/image-awaiter:$VERSION
mkdir -p "$DIR"
rm -f "$DIR/kubeconfig"
$PY -m simcluster serve --control-plane real --nodes 3 \
	--image busybox:1.36.1=2 --image registry.k8s.io/pause:3.10=1 \
	--image gcr.io/distroless/static:nonroot=1 --image "$HELPER=1" \
	--kubeconfig "$DIR/kubeconfig" --audit-log "$DIR/audit.jsonl" > "$DIR/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null || true' EXIT INT TERM
i=0
until grep -q KUBECONFIG= "$DIR/serve.log"; do
	kill -0 $SERVE 2>/dev/null || { cat "$DIR/serve.log"; exit 2; }
	i=$((i + 1)); [ $i -lt 240 ] || { echo "serve not ready in 120s"; exit 2; }
	sleep 0.5
done
IMAGE_AWAITER_E2E_HELPER_IMAGE=$HELPER $PY -m pytest -q tests/e2e -rs \
	--k8s-kubeconfig "$DIR/kubeconfig" "$@"
