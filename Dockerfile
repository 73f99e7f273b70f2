# lrpath worker image: the flows, tasks and lrpath_core on a CUDA runtime, run as a non-root user.
# Used by the Docker and Kubernetes pools (deployments/templates/*.json, docs/SCALING.md):
#   docker build -t lrpath:latest .
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 -t lrpath:cu126 .
# The image holds no credentials: S3 keys come at run time from a Kubernetes Secret (envFrom) or
# from the Docker pool's environment/volumes. The checkout lives at /opt/lrpath, which is the
# directory prefect.yaml's pull step must name (deploy with LRPATH_PROJECT_DIR=/opt/lrpath).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
ARG UID=10001

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HOME=/home/lrpath/.cache/huggingface \
    PREFECT_HOME=/home/lrpath/.prefect \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    TOKENIZERS_PARALLELISM=false

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv \
    && useradd --create-home --uid ${UID} --shell /usr/sbin/nologin lrpath

# torch first, from the CUDA index named above (the project's range, torch>=2.4,<2.15, then keeps it)
RUN pip install --index-url ${TORCH_INDEX} torch==${TORCH_VERSION}

WORKDIR /opt/lrpath
# dependencies before the sources, so a code change does not reinstall them
COPY pyproject.toml README.md ./
RUN mkdir -p lrpath_core tasks flows deployments && touch lrpath_core/__init__.py \
    && pip install . && pip uninstall -y lrpath && rm -rf lrpath_core tasks flows deployments build
COPY lrpath_core ./lrpath_core
COPY tasks ./tasks
COPY flows ./flows
COPY deployments ./deployments
COPY prefect.yaml ./
RUN pip install --no-deps -e . && python -c "import torch, prefect, lrpath_core, flows.cli"

USER ${UID}
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["lrpath", "--help"]
