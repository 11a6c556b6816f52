"""Pull failures classified from the texts real runtimes print.

Every message below was copied from a public issue or source file (cited next to the row) where
it came from a real cluster or runtime; only the surrounding "Failed to pull image ...:" wrapper
is left off where the row tests the runtime's text alone. Runtimes: containerd (the default on
most clusters), CRI-O (and podman, which shares containers/image), Docker (dockershim, cri-dockerd).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import get_args

import pytest

from image_awaiter.core.pullerrors import (
    Platform,
    PullError,
    PullErrorKind,
    classify_event,
    classify_message,
    classify_waiting,
    most_informative,
    platform_reason,
)
from image_awaiter.core.pullevents import BackingOff, parse_event
from simcluster.nodes import messages

P = "permanent"
T = "transient"
M = "platform-mismatch"

REAL_MESSAGES = [
    # ---------------------------------------------------------------- containerd: not found
    pytest.param(  # forcedotcom/salesforcedx-docker#35
        'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/salesforce/'
        'salesforcedx:latest": failed to resolve reference "docker.io/salesforce/salesforcedx:'
        'latest": docker.io/salesforce/salesforcedx:latest: not found',
        P,
        "not-found",
        id="forcedotcom/salesforcedx-docker#35: containerd-tag-not-found",
    ),
    pytest.param(  # sympozium-ai/sympozium#5
        'rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/alexsjones/'
        'sympozium/apiserver:v0.0.29": failed to resolve reference "ghcr.io/alexsjones/sympozium/'
        'apiserver:v0.0.29": ghcr.io/alexsjones/sympozium/apiserver:v0.0.29: not found',
        P,
        "not-found",
        id="sympozium-ai/sympozium#5: containerd-ghcr-tag-not-found",
    ),
    pytest.param(  # labring/sealos#4117 (private registry on a port)
        'rpc error: code = NotFound desc = failed to pull and unpack image "sealos.hub:5000/pause:'
        '3.8": failed to resolve reference "sealos.hub:5000/pause:3.8": sealos.hub:5000/pause:3.8:'
        " not found",
        P,
        "not-found",
        id="labring/sealos#4117: containerd-port-5000-is-not-a-5xx",
    ),
    pytest.param(  # thekubefleet/kubefleet#6 (kubelet 1.3x drops the "rpc error" wrapper)
        'failed to pull and unpack image "docker.io/library/kubefleet-dashboard:latest": failed to'
        ' resolve reference "docker.io/library/kubefleet-dashboard:latest": pull access denied,'
        " repository does not exist or may require authorization: server message:"
        " insufficient_scope: authorization failed",
        P,
        "not-found",
        id="thekubefleet/kubefleet#6: containerd-repository-does-not-exist",
    ),
    pytest.param(  # pfnet/image-pull-secrets-provisioner#31
        'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/'
        'controller:latest": failed to resolve reference "docker.io/library/controller:latest":'
        " pull access denied, repository does not exist or may require authorization: server"
        " message: insufficient_scope: authorization failed",
        P,
        "not-found",
        id="pfnet/image-pull-secrets-provisioner#31: containerd-unpushed-local-image",
    ),
    # ----------------------------------------------------------- containerd: access denied
    pytest.param(  # kubernetes/kubernetes#110678 (Harbor)
        'rpc error: code = Unknown desc = failed to pull and unpack image "registry.app.xxx.net/'
        'spm2fog/partsgo42:GitActionsNew-2e7e78f7bb157128f1853b0dc06bf7ccd13156d7": failed to'
        ' resolve reference "registry.app.xxx.net/spm2fog/partsgo42:GitActionsNew-2e7e78f7bb1571'
        '28f1853b0dc06bf7ccd13156d7": pulling from host registry.app.xxx.net failed with status'
        " code [manifests GitActionsNew-2e7e78f7bb157128f1853b0dc06bf7ccd13156d7]: 401"
        " Unauthorized",
        P,
        "unauthorized",
        id="kubernetes/kubernetes#110678: containerd-401",
    ),
    pytest.param(  # rossoctl/rossoctl#116 (ghcr.io private package)
        'failed to pull and unpack image "ghcr.io/kagenti/kagenti-client-registration:latest":'
        ' failed to resolve reference "ghcr.io/kagenti/kagenti-client-registration:latest": failed'
        " to authorize: failed to fetch oauth token: unexpected status from GET request to"
        " https://ghcr.io/token?scope=repository%3Akagenti%2Fkagenti-client-registration%3Apull"
        "&service=ghcr.io: 403 Forbidden",
        P,
        "unauthorized",
        id="rossoctl/rossoctl#116: containerd-403-token",
    ),
    pytest.param(  # jfrog/jfrog-credentials-provider#41 (status text empty: "401 ")
        'failed to pull and unpack image "heidiai.jfrog.io/heidiai-docker/heidi-ml-scribe:pr-6940"'
        ': failed to resolve reference "heidiai.jfrog.io/heidiai-docker/heidi-ml-scribe:pr-6940":'
        " failed to authorize: failed to fetch anonymous token: unexpected status from GET request"
        " to https://heidiai.jfrog.io/artifactory/api/docker/heidiai-docker/v2/token?scope="
        "repository%3Aheidi-ml-scribe%3Apull&scope=repository%3Aheidiai-docker%2Fheidi-ml-scribe"
        "%3Apull&service=heidiai.jfrog.io: 401 ",
        P,
        "unauthorized",
        id="jfrog/jfrog-credentials-provider#41: containerd-401-bare-status",
    ),
    pytest.param(  # rancher-sandbox/rancher-desktop#5064 (containerd resolver, via nerdctl)
        'failed to resolve reference "docker.io/library/busybox:latest": unexpected status from'
        " HEAD request to https://registry-1.docker.io/v2/library/busybox/manifests/latest: 403"
        " Forbidden",
        P,
        "unauthorized",
        id="rancher-sandbox/rancher-desktop#5064: containerd-403-head",
    ),
    pytest.param(  # IBM/guestbook#65 (containerd 1.2 wording)
        'rpc error: code = Unknown desc = failed to resolve image "docker.io/kubernetes/redis-'
        'slave:v2": server message: insufficient_scope: authorization failed',
        P,
        "unauthorized",
        id="IBM/guestbook#65: containerd-1.2-insufficient-scope",
    ),
    # ------------------------------------------------------------- containerd: transient
    pytest.param(  # namespacelabs/foundation#846 + docker/docs#21908 (same server message, whole)
        'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/jaegertracing/'
        'all-in-one@sha256:8d0bff43db3ce5c528cb6f957520511d263d7cceee012696e4afdc9087919bb9":'
        " failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1."
        "docker.io/v2/jaegertracing/all-in-one/manifests/sha256:8d0bff43db3ce5c528cb6f957520511d"
        "263d7cceee012696e4afdc9087919bb9: 429 Too Many Requests - Server message: toomanyrequests:"
        " You have reached your pull rate limit. You may increase the limit by authenticating and"
        " upgrading: https://www.docker.com/increase-rate-limit",
        T,
        "rate-limited",
        id="namespacelabs/foundation#846: containerd-429",
    ),
    pytest.param(  # myifeng/mirror-porter#92
        'rpc error: code = DeadlineExceeded desc = failed to pull and unpack image "k8s.gcr.io/'
        'conformance:v1.28.5": failed to resolve reference "k8s.gcr.io/conformance:v1.28.5":'
        ' failed to do request: Head "https://k8s.gcr.io/v2/conformance/manifests/v1.28.5": dial'
        " tcp 64.233.189.82:443: i/o timeout",
        T,
        "timeout",
        id="myifeng/mirror-porter#92: containerd-io-timeout",
    ),
    pytest.param(  # kubernetes/kubeadm#2936
        'rpc error: code = Unknown desc = failed to pull and unpack image "registry.k8s.io/kube-'
        'proxy:v1.28.2": failed to resolve reference "registry.k8s.io/kube-proxy:v1.28.2": failed'
        ' to do request: Head "https://registry.k8s.io/v2/kube-proxy/manifests/v1.28.2": dial tcp'
        " 34.96.108.209:443: connect: connection timed out",
        T,
        "timeout",
        id="kubernetes/kubeadm#2936: containerd-connection-timed-out",
    ),
    pytest.param(  # conjure-up/conjure-up#1616 (containerd 1.2)
        'rpc error: code = Unknown desc = failed to resolve image "image-registry.canonical.com:'
        '5000/cdk/coredns/coredns:1.4.0": no available registry endpoint: failed to do request:'
        " Head https://image-registry.canonical.com:5000/v2/cdk/coredns/coredns/manifests/1.4.0:"
        " dial tcp 162.213.33.199:5000: i/o timeout",
        T,
        "timeout",
        id="conjure-up/conjure-up#1616: containerd-1.2-io-timeout",
    ),
    pytest.param(  # gvenzl/oci-oracle-free#73 (Docker with the containerd image store)
        'failed to resolve reference "docker.io/gvenzl/oracle-free:latest": failed to do request:'
        ' Head "https://registry-1.docker.io/v2/gvenzl/oracle-free/manifests/latest": net/http:'
        " TLS handshake timeout",
        T,
        "timeout",
        id="gvenzl/oci-oracle-free#73: containerd-tls-handshake-timeout",
    ),
    pytest.param(  # cnoe-io/idpbuilder#520
        'failed to pull and unpack image "registry.k8s.io/coredns/coredns:v1.11.1": failed to'
        ' resolve reference "registry.k8s.io/coredns/coredns:v1.11.1": failed to do request: Head'
        ' "https://registry.k8s.io/v2/coredns/coredns/manifests/v1.11.1": tls: failed to verify'
        " certificate: x509: certificate signed by unknown authority",
        T,
        "tls",
        id="cnoe-io/idpbuilder#520: containerd-x509",
    ),
    pytest.param(  # containerd/containerd#13206
        'rpc error: code = Unknown desc = failed to pull and unpack image "my-registry:2524/admin/'
        'image/test:v2": failed to resolve reference "my-registry:2524/admin/image/test:v2":'
        ' failed to do request: Head "https://my-registry:2524/v2/admin/image/test/manifests/v2":'
        " remote error: tls: certificate required",
        T,
        "tls",
        id="containerd/containerd#13206: containerd-tls-client-cert",
    ),
    pytest.param(  # router-for-me/CLIProxyAPI#2668 ("failed to authorize" is not a denial)
        'failed to resolve reference "docker.io/eceasy/cli-proxy-api-plus:latest": failed to'
        ' authorize: failed to fetch anonymous token: Get "https://auth.docker.io/token?scope='
        'repository%3Aeceasy%2Fcli-proxy-api-plus%3Apull&service=registry.docker.io": EOF',
        T,
        "connection",
        id="router-for-me/CLIProxyAPI#2668: containerd-token-eof",
    ),
    pytest.param(  # kubernetes/kubernetes#131521
        'rpc error: code = Canceled desc = failed to pull and unpack image "private_registery.'
        'mydomain/idrac_to_kafka:20250428T1620": failed to copy: httpReadSeeker: failed open:'
        ' failed to do request: Get "https://private_registery.mydomain/v2/csg/idrac_to_kafka/'
        'blobs/sha256:d0157ca575c725b6dbdc6c7b843b8614963fda6ca619af9932bfbbb39c450c5a": context'
        " canceled",
        T,
        "connection",
        id="kubernetes/kubernetes#131521: containerd-context-canceled",
    ),
    pytest.param(  # docker/hub-feedback#2483
        'failed to pull and unpack image "docker.io/myrepo/java:2.32.83": failed to copy:'
        " httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/"
        "lyfngodocker/java/blobs/sha256:56a6e402dba1025a9efc979f5f720892648798216a3670957a5c32bf"
        "e8ff5e46: 500 Internal Server Error",
        T,
        "server-error",
        id="docker/hub-feedback#2483: containerd-500",
    ),
    pytest.param(  # bitnami/sealed-secrets#698 (quay.io outage)
        'rpc error: code = Unknown desc = failed to pull and unpack image "quay.io/bitnami/sealed-'
        'secrets-controller:v0.17.1": failed to copy: httpReaderSeeker: failed open: unexpected'
        " status code https://quay.io/v2/bitnami/sealed-secrets-controller/manifests/sha256:"
        "e121ad7f4863747e902d0398c096d2bbfab89e7ff1641b6cefedf1f14ea20ea2: 502 Bad Gateway",
        T,
        "server-error",
        id="bitnami/sealed-secrets#698: containerd-502",
    ),
    pytest.param(  # suse-edge/edge-image-builder#368 (containerd's resolver, via helm)
        "unexpected status from HEAD request to https://registry.suse.com/v2/rancher/elemental-"
        "operator-crds-chart/manifests/1.4.2: 504 Gateway Timeout",
        T,
        "server-error",
        id="suse-edge/edge-image-builder#368: containerd-504-is-a-server-error",
    ),
    pytest.param(  # suxess-it/kubriX#1825
        'failed to pull and unpack image "mcr.microsoft.com/playwright:v1.57.0": failed to extract'
        " layer sha256:ba314c14dc6d1f56b259ac2195601b3ce7c1da6d2a7ba35c1766cead711a61a7: write /var"
        "/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/604/fs/usr/lib/x86_64-"
        "linux-gnu/libLLVM.so.20.1: no space left on device: unknown",
        T,
        "disk-pressure",
        id="suxess-it/kubriX#1825: containerd-disk-full",
    ),
    pytest.param(  # ciiiii/cloudflare-docker-proxy#98: a 400 from a proxy, nothing we know
        'rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/nginx'
        ':latest": failed to copy: httpReadSeeker: failed open: unexpected status code https://'
        "docker.xxxxxx.xxx/v2/library/nginx/blobs/sha256:566e42bcee1cd697dcab6098c082789af33bc8cb"
        "cbaa95c8adbad87283c85c75?ns=docker.io: 400 Bad Request",
        T,
        "unknown",
        id="ciiiii/cloudflare-docker-proxy#98: containerd-400-is-unknown",
    ),
    pytest.param(  # nigelpoulton/ckad#51: schema-1 images are refused for good, but the text
        # names no cause we know, so it stays transient (unknown) and waits out the grace period
        "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema"
        " 1 support is disabled by default and will be removed in an upcoming release. Suggest"
        " the author of k8s.gcr.io/busybox:latest to upgrade the image to the OCI Format or"
        " Docker Image manifest v2, schema 2. More information at"
        " https://docs.docker.com/go/deprecated-image-specs/",
        T,
        "unknown",
        id="nigelpoulton/ckad#51: containerd-schema1-is-unknown",
    ),
    # ------------------------------------------------------- containerd: platform mismatch
    pytest.param(  # kubewarden/adm-controller#1378 (ends in "not found", yet no tag is missing)
        'rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/kubewarden/'
        'kubewarden-controller:latest": no match for platform in manifest: not found',
        M,
        "no-platform-variant",
        id="kubewarden/adm-controller#1378: containerd-no-match-for-platform",
    ),
    pytest.param(  # FoundationDB/fdb-kubernetes-operator#2294
        'rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/foundationdb'
        '/fdb-kubernetes-operator:v2.6.0": no match for platform in manifest: not found',
        M,
        "no-platform-variant",
        id="FoundationDB/fdb-kubernetes-operator#2294: containerd-no-match-for-platform-docker-hub",
    ),
    # --------------------------------------------------------------------------- CRI-O
    pytest.param(  # cri-o/cri-o#4388
        "rpc error: code = Unknown desc = Error reading manifest latest in registry.mydomain/"
        "image: manifest unknown: manifest unknown",
        P,
        "not-found",
        id="cri-o/cri-o#4388: crio-manifest-unknown",
    ),
    pytest.param(  # podman-container-tools/podman#9990 (containers/image, as CRI-O)
        "Error reading manifest latest in registry.opensuse.org/sonartype/nexus3: name unknown",
        P,
        "not-found",
        id="podman-container-tools/podman#9990: crio-name-unknown",
    ),
    pytest.param(  # podman-container-tools/podman#3022 (a 404 with an HTML body)
        "Error reading manifest latest in quay.io/prahapiraticz_site: error parsing HTTP 404"
        " response body: invalid character '<' looking for beginning of value: \"<!DOCTYPE HTML"
        ' PUBLIC \\"-//W3C//DTD HTML 3.2 Final//EN\\">\\n<title>404 Not Found</title>',
        P,
        "not-found",
        id="podman-container-tools/podman#3022: crio-404-html",
    ),
    pytest.param(  # element-hq/ess-starter-edition-core#1 (kubelet event, private repository)
        "rpc error: code = Unknown desc = reading manifest 2.11.9 in docker.io/vectorim/ess-"
        "starter-edition-core-operator: requested access to the resource is denied",
        P,
        "unauthorized",
        id="element-hq/ess-starter-edition-core#1: crio-denied",
    ),
    pytest.param(  # cri-o/cri-o#2331
        "rpc error: code = Unknown desc = Error reading manifest latest in docker.io/crio/"
        "busybox: errors:\ndenied: requested access to the resource is denied\nunauthorized:"
        " authentication required",
        P,
        "unauthorized",
        id="cri-o/cri-o#2331: crio-denied-multiline",
    ),
    pytest.param(  # AliyunContainerService/image-syncer#160 (containers/image, as CRI-O)
        "reading manifest 1.13 in docker.io/library/nginx: toomanyrequests: You have reached your"
        " pull rate limit. You may increase the limit by authenticating and upgrading:"
        " https://www.docker.com/increase-rate-limit",
        T,
        "rate-limited",
        id="AliyunContainerService/image-syncer#160: crio-429",
    ),
    pytest.param(  # enix/kube-image-keeper#529 (kubelet's RegistryUnavailable, CRI-O)
        'RegistryUnavailable: pinging container registry localhost:7439: Get "http://localhost:'
        '7439/v2/": dial tcp [::1]:7439: connect: connection refused',
        T,
        "connection",
        id="enix/kube-image-keeper#529: crio-registry-unavailable",
    ),
    pytest.param(  # cri-o/cri-o#3612 ("device or resource busy": only the ping says network)
        "rpc error: code = Unknown desc = error pinging docker registry k8s.gcr.io: Get"
        ' "https://k8s.gcr.io/v2/": dial tcp: lookup k8s.gcr.io: device or resource busy',
        T,
        "connection",
        id="cri-o/cri-o#3612: crio-ping-dns",
    ),
    pytest.param(  # cri-o/cri-o#2331 (comment)
        "rpc error: code = Unknown desc = error pinging docker registry registry-1.docker.io: Get"
        ' "https://registry-1.docker.io/v2/": proxyconnect tcp: dial tcp: lookup http: Temporary'
        " failure in name resolution",
        T,
        "connection",
        id="cri-o/cri-o#2331: crio-proxy-dns",
    ),
    pytest.param(  # cri-o/cri-o#1304
        "rpc error: code = Unknown desc = Error determining manifest MIME type for docker://"
        "busybox:1.26.2-uclibc: Get https://auth.docker.io/token?scope=repository%3Alibrary%2F"
        "busybox%3Apull&service=registry.docker.io: EOF",
        T,
        "connection",
        id="cri-o/cri-o#1304: crio-token-eof",
    ),
    pytest.param(  # openshift/release#66406 (CRI-O on OpenShift, kubelet event)
        "initializing source docker://registry.access.redhat.com/ubi8:latest: reading manifest"
        " latest in registry.access.redhat.com/ubi8: received unexpected HTTP status: 503 Service"
        " Unavailable",
        T,
        "server-error",
        id="openshift/release#66406: crio-503",
    ),
    pytest.param(  # podman-container-tools/podman#17802 (containers/image, as CRI-O)
        "initializing source docker://quay.io/libpod/alpine:latest: Requesting bearer token:"
        " invalid status code from registry 502 (Bad Gateway)",
        T,
        "server-error",
        id="podman-container-tools/podman#17802: crio-502-token",
    ),
    pytest.param(  # kubernetes/registry.k8s.io#333 (CRI-O 1.3x kubelet log)
        "unable to pull image or OCI artifact: pull image err: copying system image from manifest"
        ' list: writing blob: storing blob to file "/var/tmp/container_images_storage451663201/3":'
        " happened during read: unexpected EOF (after reconnecting, fetching blob: StatusCode:"
        ' 400, "<?xml version=\\"1.0\\" encoding=\\"UTF-8\\"?>\\n<Error><Cod..."); artifact err:'
        " image reference: reference is a container image, not an OCI artifact",
        T,
        "connection",
        id="kubernetes/registry.k8s.io#333: crio-unexpected-eof",
    ),
    pytest.param(  # cri-o/cri-o#5311 (a ping that fails on TLS is a TLS error)
        'rpc error: code = Unknown desc = error pinging docker registry m1.dev: Get "https://'
        'm1.dev/v2/": x509: certificate signed by unknown authority',
        T,
        "tls",
        id="cri-o/cri-o#5311: crio-x509",
    ),
    pytest.param(  # crc-org/crc#1376 (OpenShift internal registry)
        "rpc error: code = Unknown desc = error pinging docker registry default-route-openshift-"
        "image-registry.apps-crc.testing: Get https://default-route-openshift-image-registry.apps-"
        "crc.testing/v2/: x509: certificate signed by unknown authority",
        T,
        "tls",
        id="crc-org/crc#1376: crio-x509-openshift",
    ),
    pytest.param(  # cri-o/cri-o#2723
        "rpc error: code = Unknown desc = pinging docker registry returned: Get http://registry-1"
        ".docker.io/v2/: dial tcp 34.199.40.84:80: i/o timeout",
        T,
        "timeout",
        id="cri-o/cri-o#2723: crio-ping-timeout",
    ),
    pytest.param(  # kubernetes/kubernetes#93386 (CRI-O pulling the sandbox image)
        "Error initializing source docker://k8s.gcr.io/pause:3.2: error pinging docker registry"
        " k8s.gcr.io: Get https://k8s.gcr.io/v2/: dial tcp 74.125.203.82:443: i/o timeout",
        T,
        "timeout",
        id="kubernetes/kubernetes#93386: crio-initializing-source-timeout",
    ),
    pytest.param(  # containers/image#1100
        "rpc error: code = Unknown desc = Error choosing image instance: no image found in"
        " manifest list for architecture arm64, variant v8, OS linux",
        M,
        "no-platform-variant",
        id="containers/image#1100: crio-no-arm64-variant",
    ),
    pytest.param(  # thkukuk/kubic-control#17
        "rpc error: code = Unknown desc = Error choosing image instance: no image found in"
        " manifest list for architecture amd64, OS linux",
        M,
        "no-platform-variant",
        id="thkukuk/kubic-control#17: crio-no-amd64",
    ),
    pytest.param(  # crazy-max/diun#526 (containers/image, quoted variant)
        "choosing image instance: no image found in manifest list for architecture arm64, variant"
        ' "v8", OS linux',
        M,
        "no-platform-variant",
        id="crazy-max/diun#526: crio-quoted-variant",
    ),
    # ------------------------------------------------------------ Docker / dockershim
    pytest.param(  # kubevela/kubevela#981
        "rpc error: code = Unknown desc = Error response from daemon: manifest for oamdev/vela-"
        "core:0.3.1 not found: manifest unknown: manifest unknown",
        P,
        "not-found",
        id="kubevela/kubevela#981: docker-manifest-unknown",
    ),
    pytest.param(  # lachie83/k8s-kubectl#157
        "rpc error: code = Unknown desc = Error response from daemon: manifest for lachlanevenson"
        "/k8s-kubectl:v1.18.20 not found: manifest unknown: manifest unknown",
        P,
        "not-found",
        id="lachie83/k8s-kubectl#157: docker-manifest-unknown-2",
    ),
    pytest.param(  # Shopify/krane test/unit/krane/kubernetes_resource/pod_test.rb (docker 1.x)
        "rpc error: code = 2 desc = Tag thisImageIsBad not found in repository docker.io/library/"
        "hello-world",
        P,
        "not-found",
        id="Shopify/krane: docker-1.x-tag-not-found",
    ),
    pytest.param(  # Shopify/krane pod_test.rb (docker 1.x)
        "rpc error: code = 2 desc = Error: image library/some-invalid-image not found",
        P,
        "not-found",
        id="Shopify/krane: docker-1.x-image-not-found",
    ),
    pytest.param(  # kubernetes/kubernetes#7968 (kubelet 0.x with Docker, 2015)
        "Error: image foggy-willow-91020/client:v1.0.0 not found",
        P,
        "not-found",
        id="kubernetes/kubernetes#7968: docker-2015-image-not-found",
    ),
    pytest.param(  # kubernetes/kubernetes#41566 (dockerd 1.13 log)
        "repository kube-aggregator not found: does not exist or no pull access",
        P,
        "not-found",
        id="kubernetes/kubernetes#41566: docker-1.13-no-pull-access",
    ),
    pytest.param(  # octarinesec/octarine-operator#15
        "rpc error: code = Unknown desc = Error response from daemon: pull access denied for"
        " octarinesec/guardrails-enforcer, repository does not exist or may require 'docker"
        " login': denied: requested access to the resource is denied",
        P,
        "not-found",
        id="octarinesec/octarine-operator#15: docker-pull-access-denied",
    ),
    pytest.param(  # kubernetes/website#14257
        "rpc error: code = Unknown desc = Error response from daemon: pull access denied for"
        " rmeuser-auth, repository does not exist or may require 'docker login'",
        P,
        "not-found",
        id="kubernetes/website#14257: docker-pull-access-denied-short",
    ),
    pytest.param(  # octarinesec/octarine-operator#15
        "rpc error: code = Unknown desc = Error response from daemon: unauthorized: authentication"
        " required",
        P,
        "unauthorized",
        id="octarinesec/octarine-operator#15: docker-authentication-required",
    ),
    pytest.param(  # kubernetes/minikube#9161
        "rpc error: code = Unknown desc = Error response from daemon: Get http://nexus3:8083/v2/"
        "com.panov/ci-cd/manifests/0.0.1-SNAPSHOT: no basic auth credentials",
        P,
        "unauthorized",
        id="kubernetes/minikube#9161: docker-no-basic-auth",
    ),
    pytest.param(  # docker/hub-feedback#2429
        "Error response from daemon: toomanyrequests: You have reached your pull rate limit. You"
        " may increase the limit by authenticating and upgrading: https://www.docker.com/"
        "increase-rate-limit",
        T,
        "rate-limited",
        id="docker/hub-feedback#2429: docker-429",
    ),
    pytest.param(  # docker/hub-feedback#2464 ("unauthenticated" is not a denial)
        "Error response from daemon: toomanyrequests: You have reached your unauthenticated pull"
        " rate limit. https://www.docker.com/increase-rate-limit",
        T,
        "rate-limited",
        id="docker/hub-feedback#2464: docker-429-unauthenticated",
    ),
    pytest.param(  # docker/cli#2141
        "Error response from daemon: received unexpected HTTP status: 503 Service Unavailable",
        T,
        "server-error",
        id="docker/cli#2141: docker-503",
    ),
    pytest.param(  # docker/hub-feedback#2439
        "error pulling image configuration: download failed after attempts=6: received"
        " unexpected HTTP status: 500 Internal Server Error",
        T,
        "server-error",
        id="docker/hub-feedback#2439: docker-500",
    ),
    pytest.param(  # kubernetes/kubernetes#43924 (":5000/" is a port, not a status)
        'Error response from daemon: {"message":"Get https://10.78.0.228:5000/v1/_ping: x509:'
        ' certificate signed by unknown authority"}',
        T,
        "tls",
        id="kubernetes/kubernetes#43924: docker-x509",
    ),
    pytest.param(  # dwmkerr/terraform-aws-openshift#76
        "rpc error: code = Unknown desc = Get https:/docker-registry-default.ip.xip.io/project/"
        "name : x509: certificate signed by unknown authority",
        T,
        "tls",
        id="dwmkerr/terraform-aws-openshift#76: docker-x509-openshift",
    ),
    pytest.param(  # docker-archive-public/docker.kitematic#4347
        "Error response from daemon: Get https://registry-1.docker.io/v2/: dial tcp: lookup"
        " registry-1.docker.io on 10.0.2.3:53: read udp 10.0.2.15:54567->10.0.2.3:53: i/o timeout",
        T,
        "timeout",
        id="docker-archive-public/docker.kitematic#4347: docker-dns-timeout",
    ),
    pytest.param(  # kubernetes/k8s.io#5181
        "Error response from daemon: Get https://registry.k8s.io/v2/: net/http: request canceled"
        " (Client.Timeout exceeded while awaiting headers)",
        T,
        "timeout",
        id="kubernetes/k8s.io#5181: docker-client-timeout",
    ),
    pytest.param(  # UKHomeOffice/kb8or#48 (Docker 1.9: "API error (500)" wraps a timeout)
        'API error (500): invalid registry endpoint "http://10.101.100.100:30000/v0/". HTTPS'
        " attempt: unable to ping registry endpoint https://10.101.100.100:30000/v0/\nv2 ping"
        " attempt failed with error: Get https://10.101.100.100:30000/v2/: dial tcp"
        " 10.101.100.100:30000: i/o timeout",
        T,
        "timeout",
        id="UKHomeOffice/kb8or#48: docker-1.9-ping-timeout",
    ),
    pytest.param(  # docker/compose#5533
        "Error response from daemon: Get https://registry-1.docker.io/v2/: dial tcp: lookup"
        " registry-1.docker.io on [::1]:53: read udp [::1]:60341->[::1]:53: read: connection"
        " refused",
        T,
        "connection",
        id="docker/compose#5533: docker-dns-refused",
    ),
    pytest.param(  # vulhub/vulhub#755 (Docker with the containerd image store)
        'Error response from daemon: failed to resolve reference "docker.io/vulhub/nginx:1.13.2":'
        ' failed to do request: Head "https://0vmzj3q6.mirror.aliyuncs.com/v2/vulhub/nginx/'
        'manifests/1.13.2?ns=docker.io": dial tcp: lookup 0vmzj3q6.mirror.aliyuncs.com on [::1]:53'
        ": read udp [::1]:45478->[::1]:53: read: connection refused",
        T,
        "connection",
        id="vulhub/vulhub#755: docker-mirror-refused",
    ),
    pytest.param(  # Shopify/krane pod_test.rb ("intermittent image error")
        "Failed to pull image 'gcr.io/*': rpc error: code = 2 desc = net/http: request canceled",
        T,
        "connection",
        id="Shopify/krane: docker-request-canceled",
    ),
    pytest.param(  # hetznercloud/csi-driver#194
        "rpc error: code = Unknown desc = Error response from daemon: received unexpected HTTP"
        " status: 502 Bad Gateway",
        T,
        "server-error",
        id="hetznercloud/csi-driver#194: docker-502",
    ),
    pytest.param(  # rpardini/docker-registry-proxy#136 (a status text without its code)
        'rpc error: code = Unknown desc = Error response from daemon: Get "https://registry.k8s.io'
        '/v2/": Bad Gateway',
        T,
        "server-error",
        id="rpardini/docker-registry-proxy#136: docker-bad-gateway-text",
    ),
    pytest.param(  # helm/helm#1893 (kubelet 1.5 + Docker 1.13.0 bug; no known phrase: unknown)
        "image pull failed for gcr.io/kubernetes-helm/tiller:v2.1.3, this may be because there"
        " are no credentials on this request.  details: (Error response from daemon:"
        ' {"message":"target is unknown"})',
        T,
        "unknown",
        id="helm/helm#1893: docker-target-is-unknown",
    ),
    pytest.param(  # tableau/tableau-server-in-kubernetes#14
        "rpc error: code = Unknown desc = failed to register layer: Error processing tar file(exit"
        " status 1): write /tableau-server-CENSORED.rpm: no space left on device",
        T,
        "disk-pressure",
        id="tableau/tableau-server-in-kubernetes#14: docker-disk-full",
    ),
    pytest.param(  # cilium/image-tools#61
        "rpc error: code = Unknown desc = no matching manifest for linux/arm/v7 in the manifest"
        " list entries",
        M,
        "no-platform-variant",
        id="cilium/image-tools#61: docker-no-arm-v7",
    ),
    pytest.param(  # kube-rbac-proxy/kube-rbac-proxy#79
        "rpc error: code = Unknown desc = no matching manifest for linux/arm64/v8 in the manifest"
        " list entries",
        M,
        "no-platform-variant",
        id="kube-rbac-proxy/kube-rbac-proxy#79: docker-no-arm64",
    ),
    pytest.param(  # link-assistant/hive-mind#962 (Docker 25+ on the containerd store)
        "Error response from daemon: no matching manifest for linux/arm64/v8 in the manifest list"
        " entries: no match for platform in manifest: not found",
        M,
        "no-platform-variant",
        id="link-assistant/hive-mind#962: docker-containerd-store-no-arm64",
    ),
    pytest.param(  # moby/moby#39600
        "no matching manifest for linux/amd64 in the manifest list entries",
        M,
        "no-platform-variant",
        id="moby/moby#39600: docker-no-amd64",
    ),
    # --------------------------------------------------------- kubelet's own messages
    pytest.param(  # jupyterhub/zero-to-jupyterhub-k8s#472
        'Failed to apply default image tag "None:None": couldn\'t parse image reference'
        ' "None:None": invalid reference format: repository name must be lowercase',
        P,
        "invalid-reference",
        id="jupyterhub/zero-to-jupyterhub-k8s#472: kubelet-invalid-reference-uppercase",
    ),
    pytest.param(  # darklang/dark#454
        'Failed to apply default image tag "gcr.io/balmy-ground-195100/dark-gcp:gcr.io/balmy-'
        'ground-195100/dark-gcp:8e3213495373": couldn\'t parse image reference "gcr.io/balmy-'
        'ground-195100/dark-gcp:gcr.io/balmy-ground-195100/dark-gcp:8e3213495373": invalid'
        " reference format",
        P,
        "invalid-reference",
        id="darklang/dark#454: kubelet-invalid-reference-doubled",
    ),
    pytest.param(  # hystax/optscale#701
        'Container image "error_pages:local" is not present with pull policy of Never',
        P,
        "never-pull",
        id="hystax/optscale#701: kubelet-never-pull",
    ),
    pytest.param(  # k3s-io/k3s#1586
        'Container image "nginx:latest" is not present with pull policy of Never',
        P,
        "never-pull",
        id="k3s-io/k3s#1586: kubelet-never-pull-k3s",
    ),
]


@pytest.mark.parametrize(("message", "error_class", "kind"), REAL_MESSAGES)
def test_real_runtime_messages_are_classified(message: str, error_class: str, kind: str) -> None:
    error = classify_message(message)
    assert (error.error_class, error.kind) == (error_class, kind)
    assert error.message == message
    assert error.advice


def test_the_table_covers_every_kind_and_at_least_forty_messages() -> None:
    kinds = {param.values[2] for param in REAL_MESSAGES}
    assert len(REAL_MESSAGES) >= 40
    assert kinds == set(get_args(PullErrorKind))  # every kind has a real message


@pytest.mark.parametrize(
    "message",
    [
        "",
        "something nobody has seen before",
        "rpc error: code = Unknown desc = failed to pull and unpack image: weird",
    ],
)
def test_unknown_messages_are_transient(message: str) -> None:
    assert classify_message(message) == PullError(
        "transient", "unknown", "see the runtime's message; the kubelet retries", message
    )


@pytest.mark.parametrize(
    ("image", "kind"),
    [
        ("docker.io/library/eof:1", "not-found"),
        ("docker.io/library/timeout:500", "not-found"),
        ("docker.io/library/app:401", "not-found"),
        ("docker.io/library/tls:429", "not-found"),
    ],
)
def test_image_names_that_look_like_error_words_do_not_change_the_class(
    image: str, kind: str
) -> None:
    # The containerd not-found shape (forcedotcom/salesforcedx-docker#35) around odd names.
    message = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": failed to'
        f' resolve reference "{image}": {image}: not found'
    )
    assert classify_message(message).kind == kind


# ------------------------------------------------------------------ waiting states


KUBECF_63 = (  # the waiting message of InvalidImageName: "Failed to apply default image tag"
    'Failed to apply default image tag "/cloudfoundry/75f129a0-d8c9-415a-9a8a-f514002f1459:'
    'a28a05709747165a9c25c14f1b77d5c4db260d48": couldn\'t parse image reference "/cloudfoundry'
    '/75f129a0-d8c9-415a-9a8a-f514002f1459:a28a05709747165a9c25c14f1b77d5c4db260d48": invalid'
    " reference format"
)
WAITING, EVENT = classify_waiting, classify_event

# What the kubelet reports, as a container's waiting state or a pod's event: (how it is read,
# reason, message) -> (class, kind). Ids name the source of each message.
KUBELET_REPORTS = [
    pytest.param(
        WAITING,
        "InvalidImageName",
        KUBECF_63,
        P,
        "invalid-reference",
        id="cloudfoundry-incubator/kubecf#63: invalid-name-is-permanent-whatever-the-message",
    ),
    pytest.param(
        WAITING,
        "ErrImageNeverPull",
        'Container image "quay.io/jetstack/cert-manager-controller:v1.16.3" is not present with'
        " pull policy of Never",
        P,
        "never-pull",
        id="GoogleContainerTools/skaffold#9687: never-pull-is-permanent",
    ),
    pytest.param(
        WAITING,
        "ErrImagePull",
        'rpc error: code = NotFound desc = failed to pull and unpack image "cr.kagent.dev/kagent-'
        'dev/kagent/controller:0.9.11": failed to resolve reference "cr.kagent.dev/kagent-dev/'
        'kagent/controller:0.9.11": cr.kagent.dev/kagent-dev/kagent/controller:0.9.11: not found',
        P,
        "not-found",
        id="kagent-dev/kagent#2178: err-image-pull-is-read-from-the-runtime-message",
    ),
    pytest.param(
        WAITING,
        "ImagePullBackOff",
        'Back-off pulling image "<the image>"',
        T,
        "unknown",
        id="kubernetes/kubernetes#119891: a-bare-back-off-says-nothing-and-stays-transient",
    ),
    pytest.param(  # kubelet 1.32+ appends '<reason>: <message>' (kubernetes/kubernetes#127918)
        WAITING,
        "ImagePullBackOff",
        'Back-off pulling image "sealos.hub:5000/pause:3.8": ErrImagePull: rpc error: code ='
        ' NotFound desc = failed to pull and unpack image "sealos.hub:5000/pause:3.8": failed to'
        ' resolve reference "sealos.hub:5000/pause:3.8": sealos.hub:5000/pause:3.8: not found',
        P,
        "not-found",
        id="labring/sealos#4117: a-back-off-is-read-from-the-last-error-it-carries",
    ),
    pytest.param(
        WAITING,
        "ImagePullBackOff",
        'Back-off pulling image "localhost:7439/app:1": RegistryUnavailable: pinging container'
        ' registry localhost:7439: Get "http://localhost:7439/v2/": dial tcp [::1]:7439: connect:'
        " connection refused",
        T,
        "connection",
        id="enix/kube-image-keeper#529: a-back-off-after-an-outage-stays-transient",
    ),
    pytest.param(
        EVENT,
        "Failed",
        'Failed to pull image "foundationdb/fdb-kubernetes-operator:v2.6.0": rpc error: code ='
        ' NotFound desc = failed to pull and unpack image "docker.io/foundationdb/fdb-kubernetes-'
        'operator:v2.6.0": no match for platform in manifest: not found',
        M,
        "no-platform-variant",
        id="FoundationDB/fdb-kubernetes-operator#2294: a-failed-event-is-read-from-its-cause",
    ),
    pytest.param(
        EVENT,
        "InspectFailed",
        'Failed to apply default image tag "/cloudfoundry/75f129a0:a28a": couldn\'t parse image'
        ' reference "/cloudfoundry/75f129a0:a28a": invalid reference format',
        P,
        "invalid-reference",
        id="cloudfoundry-incubator/kubecf#63: an-inspect-failed-event-is-permanent",
    ),
    pytest.param(
        EVENT,
        "ErrImageNeverPull",
        'Container image "docker-registry.services.stellar-ops.com/dev/anchor-platform:e6ca4be8"'
        " is not present with pull policy of Never",
        P,
        "never-pull",
        id="stellar/anchor-platform#1467: a-never-pull-event-is-permanent",
    ),
]


@pytest.mark.parametrize(("read", "reason", "message", "error_class", "kind"), KUBELET_REPORTS)
def test_what_the_kubelet_reports_is_classified(
    read: Callable[[str, str], PullError | None],
    reason: str,
    message: str,
    error_class: str,
    kind: str,
) -> None:
    error = read(reason, message)
    assert error is not None
    assert (error.error_class, error.kind) == (error_class, kind)
    assert message.endswith(error.message)  # the runtime's text, a wrapper left off


def test_a_back_off_cause_keeps_a_leading_word_that_is_not_a_kubelet_reason() -> None:
    # Cause text of docker/hub-feedback#2429, had it come without the "ErrImagePull: " prefix.
    message = (
        'Back-off pulling image "nginx": toomanyrequests: You have reached your pull rate limit.'
        " You may increase the limit by authenticating and upgrading:"
        " https://www.docker.com/increase-rate-limit"
    )
    error = classify_waiting("ImagePullBackOff", message)
    assert error is not None
    assert (error.error_class, error.kind) == ("transient", "rate-limited")
    backoff = parse_event("BackOff", message)
    assert isinstance(backoff, BackingOff)
    assert backoff.error is not None
    assert backoff.error.startswith("toomanyrequests: You have reached")


@pytest.mark.parametrize(
    "reason", ["ContainerCreating", "PodInitializing", "CrashLoopBackOff", "CreateContainerError"]
)
def test_other_waiting_reasons_are_not_pull_failures(reason: str) -> None:
    assert classify_waiting(reason, "no space left on device") is None


# ------------------------------------------------------------------------ events


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("Failed", "Error: ErrImagePull"),  # octarinesec/octarine-operator#15
        ("Failed", "Error: ImagePullBackOff"),  # octarinesec/octarine-operator#15
        ("BackOff", 'Back-off pulling image "octarinesec/guardrails-enforcer:20.7"'),
        ("Pulling", 'Pulling image "octarinesec/guardrails-enforcer:20.7"'),
        ("Failed", 'Error: secret "db-secrets" not found'),  # not about images at all
        ("Scheduled", "Successfully assigned default/x to node-1"),
    ],
)
def test_events_without_a_cause_classify_to_nothing(reason: str, message: str) -> None:
    assert classify_event(reason, message) is None


def test_the_failed_event_tells_more_than_a_bare_back_off() -> None:
    # octarinesec/octarine-operator#15: the waiting state says "Back-off", the event says why.
    waiting = classify_waiting(
        "ImagePullBackOff", 'Back-off pulling image "octarinesec/guardrails-enforcer:20.7"'
    )
    event = classify_event(
        "Failed",
        'Failed to pull image "octarinesec/guardrails-enforcer:20.7": rpc error: code = Unknown'
        " desc = Error response from daemon: unauthorized: authentication required",
    )
    chosen = most_informative(waiting, None, event)
    assert chosen is not None
    assert (chosen.error_class, chosen.kind) == ("permanent", "unauthorized")
    assert most_informative(None, waiting) == waiting
    assert most_informative(None, None) is None


# ------------------------------------------------------------------- platforms


@pytest.mark.parametrize(
    ("message", "platform"),
    [
        (  # containers/image#1100
            "Error choosing image instance: no image found in manifest list for architecture"
            " arm64, variant v8, OS linux",
            Platform("linux", "arm64", "v8"),
        ),
        (  # thkukuk/kubic-control#17
            "Error choosing image instance: no image found in manifest list for architecture"
            " amd64, OS linux",
            Platform("linux", "amd64"),
        ),
        (  # crazy-max/diun#526
            'no image found in manifest list for architecture arm64, variant "v8", OS linux',
            Platform("linux", "arm64", "v8"),
        ),
        (  # cilium/image-tools#61
            "no matching manifest for linux/arm/v7 in the manifest list entries",
            Platform("linux", "arm", "v7"),
        ),
        (  # moby/moby#39600
            "no matching manifest for linux/amd64 in the manifest list entries",
            Platform("linux", "amd64"),
        ),
        (  # kubewarden/adm-controller#1378: containerd does not say
            'failed to pull and unpack image "ghcr.io/kubewarden/kubewarden-controller:latest":'
            " no match for platform in manifest: not found",
            None,
        ),
    ],
)
def test_the_platform_is_read_from_the_message_when_it_is_named(
    message: str, platform: Platform | None
) -> None:
    assert classify_message(message).platform == platform


def test_containerd_platform_mismatch_reason_names_the_nodes_platform() -> None:
    error = classify_message(  # codefactoryhu/manifest#11
        'rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/codefactoryhu/'
        'manifest:0.1.5": no match for platform in manifest: not found'
    )
    reason = platform_reason(error, node_os="linux", node_arch="arm64")
    assert reason == "image has no linux/arm64 variant"


def test_a_named_platform_wins_over_the_node_labels_and_drops_the_variant() -> None:
    error = classify_message(  # kube-rbac-proxy/kube-rbac-proxy#79
        "no matching manifest for linux/arm64/v8 in the manifest list entries"
    )
    assert platform_reason(error, node_os="linux", node_arch="amd64") == (
        "image has no linux/arm64 variant"
    )


# ------------------------------------------------- the simulated kubelet's messages


@pytest.mark.parametrize("template", messages.PULL_ERRORS, ids=lambda t: f"{t.runtime}-{t.kind}")
def test_every_simulated_runtime_message_classifies_as_declared(
    template: messages.PullErrorText,
) -> None:
    text = messages.render(template.text, image="nginx:1.27", ref="docker.io/library/nginx:1.27")
    error = classify_message(text)
    assert (error.error_class, error.kind) == (template.error_class, template.kind)
    assert "{" not in text


@pytest.mark.parametrize("template", messages.PULL_ERRORS, ids=lambda t: f"{t.runtime}-{t.kind}")
def test_every_simulated_failed_event_classifies_as_its_message(
    template: messages.PullErrorText,
) -> None:
    event = messages.failed_event(template, image="nginx:1.27", ref="docker.io/library/nginx:1.27")
    error = classify_event(event.reason, event.message)
    assert error is not None
    assert (error.error_class, error.kind) == (template.error_class, template.kind)
