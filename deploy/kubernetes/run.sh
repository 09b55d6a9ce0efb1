#!/usr/bin/env bash
# A coordinated STCP run on Kubernetes: the server, LOAD_HOSTS load generators that all start
# their measured interval at the same instant, and the merge of their reports.
#
#   run.sh render DIR   write the manifests, filled from params.env, into DIR (nothing applied)
#   run.sh server       namespace, results volume and server; wait until the server is ready
#   run.sh run          server, then one run: the load generators' Job and the merge Job,
#                       start time START_LEAD_SECONDS ahead; wait for the merge, print its table
#   run.sh fetch RUN_ID [DIR]
#                       copy /results/RUN_ID (every host's report and the merged one) into DIR
#                       (default ./stcp-results/RUN_ID)
#   run.sh teardown     delete the namespace and everything in it (the results volume too)
#
# Parameters: params.env beside this script (or PARAMS=FILE); the environment overrides it.
# START_EPOCH (Unix seconds) sets the start time instead of now + START_LEAD_SECONDS.
# Needs kubectl (with a context for the cluster) for everything but render.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
templates="$here/templates"

die() {
    echo "run.sh: $*" >&2
    exit 1
}

# A start time given in the environment, kept across the renders of run_once.
given_start=${START_EPOCH:-}
# shellcheck source-path=SCRIPTDIR source=params.env
source "${PARAMS:-$here/params.env}"

# Unix seconds to RFC 3339 UTC, and to a run id: GNU date, else BSD date (macOS).
utc() { date -u -d "@$1" "+$2" 2>/dev/null || date -u -r "$1" "+$2"; }

need_int() {
    local name=$1 min=$2 value=${!1}
    [[ $value =~ ^[0-9]+$ ]] || die "$name=$value: give a whole number"
    ((10#$value >= min)) || die "$name=$value: give at least $min"
}

need_one_of() {
    local name=$1 value=${!1}
    shift
    local choice
    for choice in "$@"; do
        [[ $value == "$choice" ]] && return 0
    done
    die "$name=$value: give one of $*"
}

check_params() {
    [[ $NAMESPACE =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] ||
        die "NAMESPACE=$NAMESPACE: give a DNS label (lower case letters, digits, -)"
    [[ $IMAGE =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]*$ ]] || die "IMAGE=$IMAGE: not an image reference"
    [[ -z $RESULTS_STORAGE_CLASS || $RESULTS_STORAGE_CLASS =~ ^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$ ]] ||
        die "RESULTS_STORAGE_CLASS=$RESULTS_STORAGE_CLASS: not a StorageClass name"
    [[ $RESULTS_SIZE =~ ^[0-9]+(Ki|Mi|Gi|Ti)$ ]] || die "RESULTS_SIZE=$RESULTS_SIZE: give e.g. 1Gi"
    [[ $PAYLOAD =~ ^[0-9]+[kKmMgG]?$ ]] || die "PAYLOAD=$PAYLOAD: give e.g. 256, 4k, 64k, 1m"
    need_one_of IMAGE_PULL_POLICY Always IfNotPresent Never
    need_one_of SECCOMP_PROFILE Unconfined RuntimeDefault
    need_one_of SERVER_IO auto uring epoll
    need_one_of CRYPTO aws-lc rustcrypto
    need_one_of MODE stcp tcp
    need_int SERVER_CPUS 1
    need_int SERVER_MAX_CONNS 1
    need_int LOADGEN_CPUS 1
    need_int CLIENTS 1
    need_int DEPTH 1
    need_int DURATION_SECONDS 1
    need_int MAX_ERRORS 0
    need_int START_LEAD_SECONDS 0
    need_int GRACE_SECONDS 30
    # stcp-loadgen merge combines two reports or more; one host needs no Kubernetes Job.
    need_int LOAD_HOSTS 2
    ((10#$LOAD_HOSTS * 10#$CLIENTS <= 10#$SERVER_MAX_CONNS)) ||
        die "LOAD_HOSTS x CLIENTS = $((10#$LOAD_HOSTS * 10#$CLIENTS)) connections, more than SERVER_MAX_CONNS=$SERVER_MAX_CONNS"
}

# Everything the templates use that follows from the parameters (render reads them by name).
# shellcheck disable=SC2034
derive() {
    local now lead port
    now=$(date +%s)
    START_EPOCH=${START_EPOCH:-$((now + START_LEAD_SECONDS))}
    need_int START_EPOCH 0
    START_AT=$(utc "$START_EPOCH" %Y-%m-%dT%H:%M:%SZ)
    RUN_ID=$(utc "$START_EPOCH" %Y%m%d-%H%M%S)
    lead=$((START_EPOCH > now ? START_EPOCH - now : 0))
    LOADGEN_DEADLINE_SECONDS=$((lead + DURATION_SECONDS + GRACE_SECONDS))
    MERGE_DEADLINE_SECONDS=$((LOADGEN_DEADLINE_SECONDS + 300))
    if [[ $MODE == stcp ]]; then port=7443; else port=7444; fi
    TARGET="stcp-server.$NAMESPACE.svc:$port"
    if [[ $SECCOMP_PROFILE == Unconfined ]]; then
        POD_SECURITY_LEVEL=privileged
    else
        POD_SECURITY_LEVEL=restricted
    fi
    # The worst cases the manifests' comments derive (MiB, rounded up).
    SERVER_MEMORY_MIB=$((SERVER_CPUS * 64 + (SERVER_MAX_CONNS * 80 + 1023) / 1024 + 128))
    LOADGEN_MEMORY_MIB=$(((CLIENTS * 770 + 1023) / 1024 + LOADGEN_CPUS * 16 + 128))
}

# Every {{NAME}} in the templates.
placeholders=(
    NAMESPACE IMAGE IMAGE_PULL_POLICY SECCOMP_PROFILE POD_SECURITY_LEVEL RESULTS_STORAGE_CLASS
    RESULTS_SIZE SERVER_CPUS SERVER_MAX_CONNS SERVER_IO SERVER_MEMORY_MIB CRYPTO LOAD_HOSTS
    LOADGEN_CPUS LOADGEN_MEMORY_MIB MODE PAYLOAD CLIENTS DEPTH DURATION_SECONDS MAX_ERRORS
    GRACE_SECONDS RUN_ID START_AT START_EPOCH TARGET LOADGEN_DEADLINE_SECONDS
    MERGE_DEADLINE_SECONDS
)
# The one that may be empty: its lines are then left out.
optional=" RESULTS_STORAGE_CLASS "

# Writes every template, filled in, into $1.
render() {
    local out=$1 template name value script=()
    mkdir -p "$out"
    for name in "${placeholders[@]}"; do
        value=${!name}
        if [[ -z $value ]]; then
            [[ $optional == *" $name "* ]] || die "$name is empty"
            script+=(-e "/{{$name}}/d")
        else
            # check_params allows none of sed's | & \ in a value.
            [[ $value != *[\|\&\\]* ]] || die "$name=$value: | & and \\ are not allowed"
            script+=(-e "s|{{$name}}|$value|g")
        fi
    done
    for template in "$templates"/*.yaml; do
        sed "${script[@]}" "$template" >"$out/$(basename "$template")"
        if grep -n '{{' "$out/$(basename "$template")" >&2; then
            die "$(basename "$template"): placeholders left unfilled (above)"
        fi
    done
}

kube() { kubectl -n "$NAMESPACE" "$@"; }

up_server() {
    local dir=$1
    kubectl apply -f "$dir/00-namespace.yaml"
    if ! kube get secret stcp-server-key >/dev/null 2>&1; then
        die "no Secret stcp-server-key in namespace $NAMESPACE: make it first (README.md, step 3)"
    fi
    kubectl apply -f "$dir/10-results-pvc.yaml" -f "$dir/20-server.yaml"
    kube rollout status deployment/stcp-server --timeout=300s
}

# Polls the merge Job until it succeeds or fails, at most until its deadline.
wait_merge() {
    local job=$1 deadline=$(($(date +%s) + MERGE_DEADLINE_SECONDS + 60)) state
    while (($(date +%s) < deadline)); do
        state=$(kube get job "$job" -o jsonpath='{.status.succeeded}/{.status.failed}')
        case $state in
            1/*) return 0 ;;
            */[1-9]*) return 1 ;;
        esac
        sleep 10
    done
    return 1
}

run_once() {
    local dir=$1 loadgens nodes
    up_server "$dir"
    nodes=$(kubectl get nodes -l stcp-bench/role=loadgen -o name | wc -l)
    ((nodes >= LOAD_HOSTS)) ||
        die "LOAD_HOSTS=$LOAD_HOSTS but $nodes node(s) are labelled stcp-bench/role=loadgen"
    # Render again: the start time counts from now, not from before the server came up.
    START_EPOCH=$given_start
    derive
    render "$dir"
    loadgens="stcp-loadgen-$RUN_ID"
    echo "run $RUN_ID: $LOAD_HOSTS load hosts x $CLIENTS clients, $MODE $PAYLOAD B, measured" \
        "from $START_AT for ${DURATION_SECONDS}s"
    kubectl apply -f "$dir/30-loadgen-job.yaml" -f "$dir/40-merge-job.yaml"
    echo "watch: kubectl -n $NAMESPACE get pods -l stcp-bench/run=$RUN_ID -o wide"
    if wait_merge "stcp-merge-$RUN_ID"; then
        kube logs "job/stcp-merge-$RUN_ID" -c merge
        echo "merged report: /results/$RUN_ID/merged/ on the volume; copy it out with:"
        echo "  $0 fetch $RUN_ID"
    else
        kube logs "job/stcp-merge-$RUN_ID" --all-containers >&2 || true
        die "the merge of run $RUN_ID failed; the load generators' logs: kubectl -n $NAMESPACE logs job/$loadgens"
    fi
}

fetch() {
    local run_id=$1 dest=${2:-./stcp-results/$1} dir=$3
    # A pod of an earlier fetch may still be there (it ends by itself after ten minutes).
    kube delete pod stcp-fetch --ignore-not-found --wait=true >/dev/null
    kubectl apply -f "$dir/fetch-pod.yaml"
    kube wait --for=condition=Ready pod/stcp-fetch --timeout=300s
    mkdir -p "$(dirname "$dest")"
    kube cp "stcp-fetch:/results/$run_id" "$dest"
    kube delete pod stcp-fetch --wait=false
    echo "copied into $dest:"
    find "$dest" -name '*.json' | sort
}

main() {
    local command=${1:-}
    [[ -n $command ]] || die "give a command: render DIR | server | run | fetch RUN_ID [DIR] | teardown"
    shift
    check_params
    derive
    case $command in
        render)
            [[ $# -eq 1 ]] || die "render DIR"
            render "$1"
            ;;
        server | run | fetch)
            command -v kubectl >/dev/null || die "kubectl is not on PATH"
            local dir
            dir=$(mktemp -d)
            # shellcheck disable=SC2064
            trap "rm -rf '$dir'" EXIT
            render "$dir"
            case $command in
                server) up_server "$dir" ;;
                run) run_once "$dir" ;;
                fetch)
                    [[ $# -ge 1 && $# -le 2 ]] || die "fetch RUN_ID [DIR]"
                    fetch "$1" "${2:-}" "$dir"
                    ;;
            esac
            ;;
        teardown) kubectl delete namespace "$NAMESPACE" ;;
        *) die "unknown command $command: render DIR | server | run | fetch RUN_ID [DIR] | teardown" ;;
    esac
}

main "$@"
