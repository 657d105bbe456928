# pixelfolder in a container: the README's install commands in an image whose entry point is the CLI.
#
#   docker build -t pixelfolder .                                   # CPU (torch from PyTorch's CPU index)
#   docker run --rm -v "$PWD:/data" pixelfolder generate --network pixelfolder-tiny --outdir out
#
# CUDA: PyPI's own torch 2.13.0 wheel for Linux bundles the CUDA runtime, so only the index changes; run with the
# NVIDIA container toolkit:
#   docker build --build-arg TORCH_INDEX=https://pypi.org/simple -t pixelfolder:cuda .
#   docker run --rm --gpus all -v "$PWD:/data" pixelfolder:cuda generate --network NET --outdir out --device cuda
# or an NVIDIA base image (its Python comes from apt when the base has none):
#   docker build --build-arg BASE=nvidia/cuda:12.4.1-runtime-ubuntu22.04 --build-arg TORCH_INDEX=https://pypi.org/simple .
#
# The pip lines are the README's (tests/test_dockerfile.py keeps the package specs and extras the same); only the
# torch index and pip's --no-cache-dir differ.
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIXELFOLDER_CACHE=/cache \
    PATH=/opt/venv/bin:$PATH

# A base without Python (nvidia/cuda) gets Debian/Ubuntu's python3 and venv.
RUN if ! command -v python3 >/dev/null 2>&1 || ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 python3-venv python3-pip && rm -rf /var/lib/apt/lists/*; \
    fi && python3 -m venv /opt/venv

# torch first, in its own layer (the largest download; kept when only the source changes)
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX}

WORKDIR /opt/pixelfolder
COPY . .
RUN pip install --no-cache-dir -e ".[test,fid]"

WORKDIR /data
ENTRYPOINT ["pixelfolder"]
CMD ["--help"]
