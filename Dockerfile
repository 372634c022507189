# cnn-visualizer: one uvicorn worker, a non-root user, the data directory as a volume.
#   docker build -t cnnvis .
#   docker run -p 8000:8000 -v cnnvis-data:/data cnnvis        then open http://localhost:8000
FROM python:3.11-slim

# OPENBLAS_NUM_THREADS=1: several requests and a training thread share the cores; one BLAS thread
# each avoids the oversubscription that made a TinyVGG step ~50x slower on a busy 2-core machine.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CNNVIS_DATA_DIR=/data \
    CNNVIS_WEB_DIR=/srv/cnnvis \
    OPENBLAS_NUM_THREADS=1

WORKDIR /srv/cnnvis
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY app ./app
COPY bench ./bench
RUN pip install . \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin cnnvis \
    && mkdir -p /data \
    && chown cnnvis:cnnvis /data
# The page (templates and static files) is read from CNNVIS_WEB_DIR.
COPY templates ./templates
COPY static ./static

USER cnnvis
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=4).status != 200)"]
CMD ["cnnvis", "serve", "--host", "0.0.0.0", "--port", "8000", "--data-dir", "/data"]
