"""What real kubelets and runtimes say about image pulls, as templates for the simulated kubelet.

Two kinds of data:

- `PULL_ERRORS`: the error text a runtime returns for a failed pull, per runtime and class,
  copied from real clusters (the source of each is given) with the image parts replaced by
  placeholders. The kubelet puts this text in the container's waiting message (`ErrImagePull`)
  and in a `Failed` event ("Failed to pull image ...: <text>").
- Event and waiting-state templates with their `reason`s, copied from the kubelet
  (kubernetes/kubernetes pkg/kubelet/images/image_manager.go and its history).

Placeholders, filled by `render` from the image as written in the pod spec and its normalised
reference: `{image}` (`nginx:1.27`, as written), `{ref}` (`docker.io/library/nginx:1.27`),
`{repo}` (`docker.io/library/nginx`), `{host}` (`docker.io`), `{path}` (`library/nginx`),
`{tag}` (`1.27`, or the digest), `{short_repo}` (`nginx`, Docker's familiar name).
Events also use `{error}`, `{reason}`, `{duration}`, `{waiting}`, `{size}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Runtime = Literal["containerd", "cri-o", "docker"]

# ------------------------------------------------------------------ kubelet events
# reason, type, message; the kubelet records them on the pod with involvedObject.fieldPath
# set to the container (spec.initContainers{name} / spec.containers{name}).


@dataclass(frozen=True)
class EventText:
    reason: str
    type: Literal["Normal", "Warning"]
    message: str
    since: str  # kubelet versions that print exactly this


PULLING = EventText("Pulling", "Normal", 'Pulling image "{image}"', "current")
PULLING_LOWERCASE = EventText(
    "Pulling", "Normal", 'pulling image "{image}"', "old (kubernetes/kubernetes#63430, 1.10)"
)
PULLED = EventText(
    "Pulled",
    "Normal",
    'Successfully pulled image "{image}" in {duration} ({waiting} including waiting).'
    " Image size: {size} bytes.",
    "1.30+ (kubernetes/kubernetes#121719)",  # seen e.g. as 'in 5.969s (5.969s including
    # waiting). Image size: 727869 bytes.' (sash3939/Kubernetes8-Config_Apps README.md)
)
PULLED_WITH_WAITING = EventText(
    "Pulled",
    "Normal",
    'Successfully pulled image "{image}" in {duration} ({waiting} including waiting)',
    "kubernetes/kubernetes#111772 until 1.30",  # dandi/dandi-hub#89: 'in 1.466729067s
    # (3m53.352084967s including waiting)'
)
PULLED_WITH_DURATION = EventText(
    "Pulled",
    "Normal",
    'Successfully pulled image "{image}" in {duration}',
    "kubernetes/kubernetes#91563 until #111772",
)
PULLED_BARE = EventText(
    "Pulled", "Normal", 'Successfully pulled image "{image}"', "before kubernetes#91563 (2020)"
)
ALREADY_PRESENT = EventText(
    "Pulled", "Normal", 'Container image "{image}" already present on machine', "all"
)
ALREADY_PRESENT_KEP_2535 = EventText(
    "Pulled",
    "Normal",
    'Container image "{image}" already present on machine and can be accessed by the pod',
    "newer kubelets (KEP-2535, ensure secret pulled images)",
)
FAILED = EventText("Failed", "Warning", 'Failed to pull image "{image}": {error}', "all")
# Recorded after FAILED and on back-off syncs, {reason} being ErrImagePull / ImagePullBackOff
# (octarinesec/octarine-operator#15 shows the whole sequence).
FAILED_REASON = EventText("Failed", "Warning", "Error: {reason}", "all")
BACKOFF = EventText("BackOff", "Normal", 'Back-off pulling image "{image}"', "all")
INVALID_IMAGE_NAME = EventText(
    "InspectFailed",
    "Warning",
    'Failed to apply default image tag "{image}": couldn\'t parse image reference "{image}":'
    " invalid reference format",
    "all",  # cloudfoundry-incubator/kubecf#63; zero-to-jupyterhub-k8s#472
)
NEVER_PULL = EventText(
    "ErrImageNeverPull",
    "Warning",
    'Container image "{image}" is not present with pull policy of Never',
    "all",  # hystax/optscale#701; k3s-io/k3s#1586
)

# ------------------------------------------------------------ container waiting state
# (reason, message) of status.containerStatuses[].state.waiting while a pull fails.
WAITING_ERR_IMAGE_PULL = ("ErrImagePull", "{error}")
WAITING_BACKOFF = ("ImagePullBackOff", 'Back-off pulling image "{image}"')
# kubernetes/kubernetes#127918 (1.32+): the last error is kept in the back-off message.
WAITING_BACKOFF_1_32 = ("ImagePullBackOff", 'Back-off pulling image "{image}": {reason}: {error}')
WAITING_INVALID_IMAGE_NAME = ("InvalidImageName", INVALID_IMAGE_NAME.message)
WAITING_NEVER_PULL = ("ErrImageNeverPull", NEVER_PULL.message)

# ------------------------------------------------------------------- runtime errors


@dataclass(frozen=True)
class PullErrorText:
    runtime: Runtime
    error_class: Literal["permanent", "transient", "platform-mismatch"]
    kind: str
    text: str
    source: str


_CTR = 'failed to pull and unpack image "{ref}"'
_CTR_RESOLVE = f'{_CTR}: failed to resolve reference "{{ref}}"'
_CTR_HEAD = (
    f'{_CTR_RESOLVE}: failed to do request: Head "https://{{host}}/v2/{{path}}/manifests/{{tag}}"'
)
_CTR_BLOB = (
    f"{_CTR}: failed to copy: httpReadSeeker: failed open: unexpected status code"
    " https://{host}/v2/{path}/blobs/sha256:56a6e402dba1025a9efc979f5f720892648798216a3670957a5c32bfe8ff5e46"
)

PULL_ERRORS: tuple[PullErrorText, ...] = (
    # containerd (kubelet 1.3x prints the runtime text without the "rpc error: code = ..." wrapper
    # in events; older ones keep it, e.g. "rpc error: code = NotFound desc = ...")
    PullErrorText(
        "containerd",
        "permanent",
        "not-found",
        "rpc error: code = NotFound desc = " + _CTR_RESOLVE + ": {ref}: not found",
        "forcedotcom/salesforcedx-docker#35, kagent-dev/kagent#2178",
    ),
    PullErrorText(
        "containerd",
        "permanent",
        "not-found",
        _CTR_RESOLVE + ": pull access denied, repository does not exist or may require"
        " authorization: server message: insufficient_scope: authorization failed",
        "thekubefleet/kubefleet#6, pfnet/image-pull-secrets-provisioner#31",
    ),
    PullErrorText(
        "containerd",
        "permanent",
        "unauthorized",
        _CTR_RESOLVE + ": pulling from host {host} failed with status code [manifests {tag}]:"
        " 401 Unauthorized",
        "kubernetes/kubernetes#110678",
    ),
    PullErrorText(
        "containerd",
        "permanent",
        "unauthorized",
        _CTR_RESOLVE + ": failed to authorize: failed to fetch oauth token: unexpected status"
        " from GET request to https://{host}/token?scope=repository%3A{path}%3Apull&service={host}:"
        " 403 Forbidden",
        "rossoctl/rossoctl#116",
    ),
    PullErrorText(
        "containerd",
        "transient",
        "rate-limited",
        f"{_CTR}: failed to copy: httpReadSeeker: failed open: unexpected status code"
        " https://{host}/v2/{path}/manifests/{tag}: 429 Too Many Requests - Server message:"
        " toomanyrequests: You have reached your pull rate limit. You may increase the limit by"
        " authenticating and upgrading: https://www.docker.com/increase-rate-limit",
        "namespacelabs/foundation#846, docker/docs#21908",
    ),
    PullErrorText(
        "containerd",
        "transient",
        "timeout",
        "rpc error: code = DeadlineExceeded desc = "
        + _CTR_HEAD
        + ": dial tcp 64.233.189.82:443: i/o timeout",
        "myifeng/mirror-porter#92",
    ),
    PullErrorText(
        "containerd",
        "transient",
        "connection",
        _CTR_HEAD + ": dial tcp 34.96.108.209:443: connect: connection refused",
        "kubernetes/kubeadm#2936 (shape), kubernetes/registry.k8s.io#306 (ending)",
    ),
    PullErrorText(
        "containerd",
        "transient",
        "tls",
        _CTR_HEAD + ": tls: failed to verify certificate: x509: certificate signed by unknown"
        " authority",
        "cnoe-io/idpbuilder#520",
    ),
    PullErrorText(
        "containerd",
        "transient",
        "server-error",
        _CTR_BLOB + ": 500 Internal Server Error",
        "docker/hub-feedback#2483",
    ),
    PullErrorText(
        "containerd",
        "transient",
        "server-error",
        _CTR_BLOB + ": 503 Service Unavailable",
        "docker/hub-feedback#2483 (shape), docker/cli#2141 (status)",
    ),
    PullErrorText(
        "containerd",
        "transient",
        "disk-pressure",
        f"{_CTR}: failed to extract layer"
        " sha256:ba314c14dc6d1f56b259ac2195601b3ce7c1da6d2a7ba35c1766cead711a61a7: write"
        " /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/604/fs/usr/lib/"
        "x86_64-linux-gnu/libLLVM.so.20.1: no space left on device: unknown",
        "suxess-it/kubriX#1825",
    ),
    PullErrorText(
        "containerd",
        "platform-mismatch",
        "no-platform-variant",
        "rpc error: code = NotFound desc = "
        + _CTR
        + ": no match for platform in manifest: not found",
        "kubewarden/adm-controller#1378, FoundationDB/fdb-kubernetes-operator#2294",
    ),
    # CRI-O (containers/image)
    PullErrorText(
        "cri-o",
        "permanent",
        "not-found",
        "rpc error: code = Unknown desc = reading manifest {tag} in {repo}: manifest unknown:"
        " manifest unknown",
        "cri-o/cri-o#4388 (older wording 'Error reading manifest')",
    ),
    PullErrorText(
        "cri-o",
        "permanent",
        "unauthorized",
        "rpc error: code = Unknown desc = reading manifest {tag} in {repo}: requested access to"
        " the resource is denied",
        "element-hq/ess-starter-edition-core#1",
    ),
    PullErrorText(
        "cri-o",
        "transient",
        "rate-limited",
        "reading manifest {tag} in {repo}: toomanyrequests: You have reached your pull rate"
        " limit. You may increase the limit by authenticating and upgrading:"
        " https://www.docker.com/increase-rate-limit",
        "AliyunContainerService/image-syncer#160",
    ),
    PullErrorText(
        "cri-o",
        "transient",
        "connection",
        'RegistryUnavailable: pinging container registry {host}: Get "https://{host}/v2/": dial'
        " tcp 10.96.0.1:443: connect: connection refused",
        "enix/kube-image-keeper#529",
    ),
    PullErrorText(
        "cri-o",
        "transient",
        "connection",
        "rpc error: code = Unknown desc = Error determining manifest MIME type for docker://{ref}:"
        " Get https://auth.docker.io/token?scope=repository%3A{path}%3Apull&service="
        "registry.docker.io: EOF",
        "cri-o/cri-o#1304",
    ),
    PullErrorText(
        "cri-o",
        "transient",
        "timeout",
        "rpc error: code = Unknown desc = pinging docker registry returned: Get https://{host}/v2/:"
        " dial tcp 34.199.40.84:443: i/o timeout",
        "cri-o/cri-o#2723",
    ),
    PullErrorText(
        "cri-o",
        "transient",
        "tls",
        'rpc error: code = Unknown desc = error pinging docker registry {host}: Get "https://{host}'
        '/v2/": x509: certificate signed by unknown authority',
        "cri-o/cri-o#5311",
    ),
    PullErrorText(
        "cri-o",
        "transient",
        "server-error",
        "initializing source docker://{ref}: reading manifest {tag} in {repo}: received"
        " unexpected HTTP status: 503 Service Unavailable",
        "openshift/release#66406",
    ),
    PullErrorText(
        "cri-o",
        "transient",
        "disk-pressure",
        "rpc error: code = Unknown desc = Error writing blob: error storing blob to file"
        ' "/var/tmp/storage178245615/2": write /var/tmp/storage178245615/2: no space left on'
        " device",
        "cri-o/cri-o#5187",
    ),
    PullErrorText(
        "cri-o",
        "platform-mismatch",
        "no-platform-variant",
        "rpc error: code = Unknown desc = Error choosing image instance: no image found in"
        " manifest list for architecture arm64, variant v8, OS linux",
        "containers/image#1100",
    ),
    # Docker (dockershim / cri-dockerd)
    PullErrorText(
        "docker",
        "permanent",
        "not-found",
        "rpc error: code = Unknown desc = Error response from daemon: manifest for {image} not"
        " found: manifest unknown: manifest unknown",
        "kubevela/kubevela#981, lachie83/k8s-kubectl#157",
    ),
    PullErrorText(
        "docker",
        "permanent",
        "not-found",
        "rpc error: code = Unknown desc = Error response from daemon: pull access denied for"
        " {short_repo}, repository does not exist or may require 'docker login': denied:"
        " requested access to the resource is denied",
        "octarinesec/octarine-operator#15",
    ),
    PullErrorText(
        "docker",
        "permanent",
        "unauthorized",
        "rpc error: code = Unknown desc = Error response from daemon: unauthorized:"
        " authentication required",
        "octarinesec/octarine-operator#15",
    ),
    PullErrorText(
        "docker",
        "transient",
        "rate-limited",
        "rpc error: code = Unknown desc = Error response from daemon: toomanyrequests: You have"
        " reached your pull rate limit. You may increase the limit by authenticating and"
        " upgrading: https://www.docker.com/increase-rate-limit",
        "docker/hub-feedback#2429",
    ),
    PullErrorText(
        "docker",
        "transient",
        "server-error",
        "rpc error: code = Unknown desc = Error response from daemon: received unexpected HTTP"
        " status: 503 Service Unavailable",
        "docker/cli#2141",
    ),
    PullErrorText(
        "docker",
        "transient",
        "timeout",
        "rpc error: code = Unknown desc = Error response from daemon: Get https://{host}/v2/:"
        " net/http: request canceled (Client.Timeout exceeded while awaiting headers)",
        "kubernetes/k8s.io#5181",
    ),
    PullErrorText(
        "docker",
        "transient",
        "connection",
        "rpc error: code = Unknown desc = Error response from daemon: Get https://{host}/v2/: dial"
        " tcp: lookup {host} on [::1]:53: read udp [::1]:60341->[::1]:53: read: connection refused",
        "docker/compose#5533",
    ),
    PullErrorText(
        "docker",
        "transient",
        "tls",
        "rpc error: code = Unknown desc = Get https://{host}/v2/: x509: certificate signed by"
        " unknown authority",
        "dwmkerr/terraform-aws-openshift#76",
    ),
    PullErrorText(
        "docker",
        "transient",
        "disk-pressure",
        "rpc error: code = Unknown desc = failed to register layer: Error processing tar"
        " file(exit status 1): write /usr/lib/x86_64-linux-gnu/libLLVM.so.20.1: no space left"
        " on device",
        "tableau/tableau-server-in-kubernetes#14",
    ),
    PullErrorText(
        "docker",
        "platform-mismatch",
        "no-platform-variant",
        "rpc error: code = Unknown desc = no matching manifest for linux/arm64/v8 in the manifest"
        " list entries",
        "kube-rbac-proxy/kube-rbac-proxy#79",
    ),
)


@dataclass(frozen=True)
class Event:
    reason: str
    type: str
    message: str


def render(template: str, *, image: str, ref: str, **extra: str) -> str:
    """Fill a template from the image as written and its normalised reference."""
    repo, tag = _split(ref)
    host, _, path = repo.partition("/")
    short_repo = repo.removeprefix("docker.io/").removeprefix("library/")
    return template.format(
        image=image,
        ref=ref,
        repo=repo,
        host=host,
        path=path,
        tag=tag,
        short_repo=short_repo,
        **extra,
    )


def failed_event(error: PullErrorText, *, image: str, ref: str) -> Event:
    """The kubelet's `Failed` event for one failed pull attempt."""
    text = render(error.text, image=image, ref=ref)
    return Event(
        FAILED.reason, FAILED.type, render(FAILED.message, image=image, ref=ref, error=text)
    )


def pulled_event(
    *, image: str, seconds: float, seconds_including_waiting: float, size_bytes: int
) -> Event:
    """The kubelet's `Pulled` event as 1.30+ prints it."""
    message = PULLED.message.format(
        image=image,
        duration=go_duration(seconds),
        waiting=go_duration(seconds_including_waiting),
        size=size_bytes,
    )
    return Event(PULLED.reason, PULLED.type, message)


def go_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` after `.Truncate(time.Millisecond)`, as the kubelet prints."""
    millis = int(seconds * 1000 + 1e-6)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    secs = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


def _split(ref: str) -> tuple[str, str]:
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo.rsplit(":", 1)[0] if ":" in repo.rsplit("/", 1)[-1] else repo, digest
    name, slash, last = ref.rpartition("/")
    if ":" in last:
        base, _, tag = last.partition(":")
        return f"{name}{slash}{base}", tag
    return ref, "latest"
